// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"math"
	"net/netip"

	"github.com/jackc/pgx/v5"
)

// The adds of a group-commit batch run as two statements, in the batch's
// one round trip and one transaction, whatever their number:
//
//   - lockKeysSQL locks the rows of their keys (FOR NO KEY UPDATE, in
//     key_hash order: the lock order every batch shares). Adds and removes
//     of one key wait for each other here, so the cap is exact.
//   - addDomainsSQL then inserts them all, set-based (arrays through
//     unnest). In READ COMMITTED each statement takes a new snapshot, so
//     this one, which starts after every lock was granted, sees every add
//     and remove of those keys that committed before: its existence checks
//     and counts are exact, with no second look.
//
// The count a key's cap is checked against is keyHeldSQL: its public
// domains (api_keys.domain_count, one HOT update per key per batch) and
// its targets behind sites, which share the one cap. count(*) over the
// domains index would be exact too (see above), but it costs a walk of up
// to the cap's 1,000 index entries per key per batch, where the counter
// costs one row; a key's targets behind sites are counted (usually none),
// and AddSiteTarget takes the same key lock before it adds one.
//
// An add is audited by its own domains row (created_at, created_ip, the
// key); the view audit_trail shows those rows as "domain.add" events
// beside the audit table, and a removal's audit entry keeps when and from
// where the domain was added.
const lockKeysSQL = `SELECT 1 FROM api_keys WHERE key_hash = ANY($1::bytea[]) ORDER BY key_hash FOR NO KEY UPDATE`

// What a key holds against its cap (keyHeldSQL, which counts its
// targets behind sites) is counted once per key of the batch, in the
// materialized CTE keys, not once per add.
//
// The look-up of an add's domain is a scalar subquery with LIMIT 1, not an
// EXISTS: PostgreSQL may run an EXISTS in a select list as a hashed
// subplan, which reads all of domains once per batch (TestAddPlanUsesIndexes).
//
// addDomainsSQL inserts each input row unless its key is unknown, revoked,
// blocked or at its cap, or the domain is there already; the first of two
// equal rows in one batch is the one that adds. It answers one row per
// input, by its position (1-based): the key's state, and whether the row
// inserted, or found its domain already stored.
var addDomainsSQL = `
WITH input AS (
    SELECT * FROM unnest($1::bytea[], $2::text[], $3::int[], $4::bool[], $5::inet[], $6::int[])
        WITH ORDINALITY AS i (key_hash, name, port, wildcard, ip, max_per_key, idx)
), keys AS MATERIALIZED (
    SELECT k.id, k.key_hash, k.account_id, k.revoked_at, k.pending_at, ` + keyHeldSQL + ` AS held
    FROM api_keys k WHERE k.key_hash = ANY($1::bytea[])
), keyed AS (
    SELECT i.*, k.id AS key_id, k.held AS domain_count, k.revoked_at IS NOT NULL AS revoked,
           coalesce(a.blocked_at IS NOT NULL, false) AS blocked,
           coalesce(a.confirmed_at IS NOT NULL, false) AND k.pending_at IS NULL AS confirmed,
           (SELECT true FROM domains d WHERE d.api_key_id = k.id AND d.name = i.name AND d.port = i.port
            LIMIT 1) IS NOT NULL AS stored
    FROM input i
    LEFT JOIN keys k ON k.key_hash = i.key_hash
    LEFT JOIN accounts a ON a.id = k.account_id
), fresh AS (
    SELECT f.*, row_number() OVER (PARTITION BY key_id ORDER BY idx) AS rank
    FROM (SELECT DISTINCT ON (key_id, name, port) * FROM keyed
          WHERE key_id IS NOT NULL AND NOT revoked AND NOT blocked AND NOT stored
          ORDER BY key_id, name, port, idx) f
), allowed AS (
    SELECT * FROM fresh WHERE domain_count + rank <= max_per_key
), ins AS (
    INSERT INTO domains (api_key_id, name, port, wildcard, created_ip)
    SELECT key_id, name, port, wildcard, ip FROM allowed
    ON CONFLICT (api_key_id, name, port) DO NOTHING
    RETURNING api_key_id, name, port
), bump AS (
    UPDATE api_keys k SET domain_count = k.domain_count + n.added, last_added_at = now()
    FROM (SELECT api_key_id, count(*) AS added FROM ins GROUP BY api_key_id) n
    WHERE k.id = n.api_key_id
)
SELECT k.idx, k.key_id IS NOT NULL, coalesce(k.revoked, false), k.blocked, k.confirmed,
       k.idx IN (SELECT idx FROM allowed) AND in_ins,
       k.stored OR in_ins OR k.idx IN (SELECT idx FROM allowed)
FROM keyed k, LATERAL (SELECT EXISTS (SELECT 1 FROM ins
    WHERE ins.api_key_id = k.key_id AND ins.name = k.name AND ins.port = k.port) AS in_ins) x`

// addRow is one add of a batch: what it asks, and what the batch answered.
type addRow struct {
	in                                                NewDomain
	found, revoked, blocked, confirmed, added, exists bool
}

// AddDomain records a domain for a known key; it joins its batch's
// set-based insert. A value the schema would refuse is refused here, so
// that it never fails the statement of its whole batch.
func (p *Postgres) AddDomain(ctx context.Context, d NewDomain) (AddResult, error) {
	if err := refuseEarly(d); err != nil {
		return AddResult{}, err
	}
	op := addOp(d)
	return op.outcome(p.writes.do(ctx, op))
}

// StartAddDomain is AddDomain without waiting: then hears the outcome
// once, when the add's batch committed or failed, or when ctx ends first.
// It runs on the group-commit writer (or on ctx's timer), so it must be
// quick and must not block. StartAddDomain reports false, and never calls
// then, when the queue of writes is full, or when d is one that AddDomain
// refuses before it joins a batch (AddDomain answers it at once).
func (p *Postgres) StartAddDomain(ctx context.Context, d NewDomain, then func(AddResult, error)) bool {
	if refuseEarly(d) != nil {
		return false
	}
	op := addOp(d)
	return p.writes.start(ctx, op, func(err error) { then(op.outcome(err)) })
}

// outcome is the answer to the add op once its batch reported err.
func (op *writeOp) outcome(err error) (AddResult, error) {
	if err != nil {
		// The row may still be written by a batch that outlived ctx.
		return AddResult{}, classify(err)
	}
	return op.add.result()
}

// addOp is an add for a batch.
func addOp(d NewDomain) *writeOp {
	if d.MaxPerKey <= 0 {
		d.MaxPerKey = math.MaxInt32 // no limit
	}
	return &writeOp{order: d.Key.Hash[:], add: &addRow{in: d}}
}

// refuseEarly refuses the values that domains' CHECK constraints refuse,
// in the words of refusals.
func refuseEarly(d NewDomain) error {
	switch {
	case len(d.Name) > MaxDomainName:
		return refused("domains_name_check")
	case d.Port < 1 || d.Port > 65535:
		return refused("domains_port_check")
	}
	return nil
}

// result is the add's outcome once its batch committed.
func (r *addRow) result() (AddResult, error) {
	res := AddResult{Active: r.confirmed && !r.blocked}
	switch {
	case !r.found:
		return res, ErrUnknownKey
	case r.revoked:
		return res, ErrKeyRevoked
	case r.blocked:
		return res, ErrAccountBlocked
	case r.added:
		res.Outcome = DomainAdded
	case r.exists:
		res.Outcome = DomainExists
	default:
		return res, ErrDomainLimit
	}
	return res, nil
}

// queueAdds queues the two statements of a batch's adds.
func queueAdds(b *pgx.Batch, adds []*writeOp) {
	n := len(adds)
	hashes, names, ports := make([][]byte, n), make([]string, n), make([]int32, n)
	wildcards, ips, caps := make([]bool, n), make([]*netip.Addr, n), make([]int32, n)
	for i, op := range adds {
		d := op.add.in
		hashes[i], names[i], ports[i] = d.Key.Hash[:], d.Name, int32(d.Port)
		wildcards[i], caps[i] = d.Wildcard, int32(min(d.MaxPerKey, math.MaxInt32))
		if d.IP.IsValid() {
			ips[i] = &d.IP
		}
	}
	b.Queue(lockKeysSQL, hashes)
	b.Queue(addDomainsSQL, hashes, names, ports, wildcards, ips, caps)
}

// readAdds reads the answers of queueAdds into the adds.
func readAdds(br pgx.BatchResults, adds []*writeOp) error {
	if _, err := br.Exec(); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var idx int64
		var r addRow
		if err := rows.Scan(&idx, &r.found, &r.revoked, &r.blocked, &r.confirmed, &r.added, &r.exists); err != nil {
			return err
		}
		row := adds[idx-1].add
		r.in = row.in
		*row = r
	}
	return rows.Err()
}
