// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// Discovery keeps the endpoints agents discovered, as proposals to the
// owner of the agent's account.
type Discovery interface {
	// StoreDiscovered records one source's complete list of candidates
	// from a claimed agent: new ones are proposed, known ones seen again,
	// and the source's others marked gone. With AutoAdd, the proposals
	// not ignored are added behind the agent's site.
	StoreDiscovered(ctx context.Context, b DiscoveredBatch) (DiscoveredCounts, error)
	// AccountDiscovered lists the proposals of the key's account that are
	// neither ignored nor already targets, by site, name and port.
	AccountDiscovered(ctx context.Context, owner KeyRef) ([]Discovered, error)
	// IgnoreDiscovered hides the account's proposals of name:port for
	// good; false when there is none (or none not ignored yet).
	IgnoreDiscovered(ctx context.Context, owner KeyRef, name string, port int) (bool, error)
	// AllDiscovered lists every proposal, with its account, for the operator.
	AllDiscovered(ctx context.Context) ([]Discovered, error)
}

var _ Discovery = (*Postgres)(nil)

// MaxAutoAdd is how many targets behind sites an account may have before
// auto_add stops adding (the rest stay proposals).
const MaxAutoAdd = 1000

// DiscoveredName is one candidate endpoint an agent found.
type DiscoveredName struct {
	Name      string
	Port      int
	Addresses int
}

// DiscoveredBatch is one source's complete list from one agent.
type DiscoveredBatch struct {
	AgentKey   KeyRef
	Source     string // "axfr:ZONE"
	AutoAdd    bool
	Candidates []DiscoveredName
	// MaxPerKey is the cap of the key auto_add adds through
	// (KEYCHEST_MAX_DOMAINS_PER_KEY; 0: no limit).
	MaxPerKey int
}

// DiscoveredCounts says what a batch did.
type DiscoveredCounts struct {
	Proposed, Seen, Gone, Added int
	// Left counts, with auto_add, the source's open proposals it did not
	// add: the key's cap (or MaxAutoAdd) was reached.
	Left int
}

// Discovered is one proposal.
type Discovered struct {
	Email     string     `json:"email,omitempty"` // AllDiscovered only
	Site      string     `json:"site"`
	Name      string     `json:"name"`
	Port      int        `json:"port"`
	Source    string     `json:"source"`
	Addresses int        `json:"addresses"`
	FirstSeen time.Time  `json:"first_seen"`
	LastSeen  time.Time  `json:"last_seen"`
	Gone      *time.Time `json:"gone,omitempty"`
	Ignored   *time.Time `json:"ignored,omitempty"` // AllDiscovered only
	Added     bool       `json:"added"`             // AllDiscovered only: a target already
}

// StoreDiscovered records a batch in one transaction; concurrent batches
// of one account, site and source wait for each other.
func (p *Postgres) StoreDiscovered(ctx context.Context, b DiscoveredBatch) (DiscoveredCounts, error) {
	var c DiscoveredCounts
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		ag, err := claimedAgentOf(ctx, tx, b.AgentKey)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1::bigint::text || '/' || $2 || '/' || $3, 0))`,
			ag.account, ag.site, b.Source); err != nil {
			return err
		}
		if c, err = upsertDiscovered(ctx, tx, ag.account, ag.site, ag.id, b); err != nil || !b.AutoAdd {
			return err
		}
		c.Added, c.Left, err = autoAdd(ctx, tx, ag.account, ag.site, b.Source, b.MaxPerKey)
		return err
	})
	return c, classify(err)
}

// upsertDiscovered proposes the new candidates, refreshes the known ones
// and marks the source's others gone: a row this transaction did not
// touch keeps a last_seen older than now().
func upsertDiscovered(ctx context.Context, tx pgx.Tx, account int64, site string, agent int64, b DiscoveredBatch) (DiscoveredCounts, error) {
	var c DiscoveredCounts
	n := len(b.Candidates)
	names, ports, addrs := make([]string, n), make([]int32, n), make([]int32, n)
	for i, d := range b.Candidates {
		names[i], ports[i], addrs[i] = d.Name, int32(d.Port), int32(d.Addresses)
	}
	err := tx.QueryRow(ctx, `WITH c AS (
			SELECT DISTINCT ON (name, port) name, port, addresses
			FROM unnest($5::text[], $6::int[], $7::int[]) AS c(name, port, addresses)
		), up AS (
			INSERT INTO discovered (account_id, site, name, port, source, addresses, agent_id)
			SELECT $1, $2, name, port, $3, addresses, $4 FROM c
			ON CONFLICT (account_id, site, name, port) DO UPDATE SET source = excluded.source,
				addresses = excluded.addresses, agent_id = excluded.agent_id, last_seen = now(), gone_at = NULL
			RETURNING xmax = 0 AS inserted
		)
		SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`,
		account, site, b.Source, agent, names, ports, addrs).Scan(&c.Proposed, &c.Seen)
	if err != nil {
		return c, err
	}
	tag, err := tx.Exec(ctx, `UPDATE discovered SET gone_at = now()
		WHERE account_id = $1 AND site = $2 AND source = $3 AND gone_at IS NULL AND last_seen < now()`,
		account, site, b.Source)
	c.Gone = int(tag.RowsAffected())
	return c, err
}

// autoAdd adds the source's live proposals that are neither ignored nor
// targets yet behind the site, through the account's oldest working key
// (approved: a key waiting for the owner's approval is a stranger's),
// while the account has fewer than MaxAutoAdd targets behind sites and
// the key is under its cap (maxPerKey, 0: none; its public domains count
// too). It holds the key's lock as AddSiteTarget does. It reports how
// many it added, and how many of those proposals it left (the cap).
func autoAdd(ctx context.Context, tx pgx.Tx, account int64, site, source string, maxPerKey int) (added, left int, err error) {
	var key int64
	var held int
	err = tx.QueryRow(ctx, `SELECT k.id, `+keyHeldSQL+` FROM api_keys k JOIN accounts a ON a.id = k.account_id
		WHERE k.account_id = $1 AND k.revoked_at IS NULL AND `+keyApproved+` AND a.confirmed_at IS NOT NULL AND a.blocked_at IS NULL
		ORDER BY k.id LIMIT 1 FOR NO KEY UPDATE OF k`, account).Scan(&key, &held)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	room := math.MaxInt32
	if maxPerKey > 0 {
		room = max(0, maxPerKey-held)
	}
	const open = `FROM discovered d WHERE d.account_id = $1 AND d.site = $2 AND d.source = $3 AND d.gone_at IS NULL AND d.ignored_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM agent_targets t WHERE t.account_id = $1 AND t.name = d.name AND t.port = d.port)`
	tag, err := tx.Exec(ctx, `INSERT INTO agent_targets (account_id, api_key_id, site, name, port)
		SELECT d.account_id, $4, d.site, d.name, d.port `+open+`
		ORDER BY d.name, d.port
		LIMIT greatest(0, least($6, $5 - (SELECT count(*) FROM agent_targets s WHERE s.account_id = $1 AND `+liveSiteTarget("s")+`)))
		ON CONFLICT (api_key_id, name, port) DO NOTHING`, account, site, source, key, MaxAutoAdd, room)
	if err != nil {
		return 0, 0, err
	}
	err = tx.QueryRow(ctx, `SELECT count(*) `+open, account, site, source).Scan(&left)
	return int(tag.RowsAffected()), left, err
}

// AccountDiscovered lists the account's open proposals.
func (p *Postgres) AccountDiscovered(ctx context.Context, owner KeyRef) ([]Discovered, error) {
	var out []Discovered
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		account, err := ownerAccount(ctx, tx, owner)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT '', d.site, d.name, d.port, d.source, d.addresses, d.first_seen, d.last_seen,
				d.gone_at, d.ignored_at, false
			FROM discovered d WHERE `+openProposalsSQL+`
			ORDER BY d.site, d.name, d.port`, account)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, scanDiscovered)
		return err
	})
	return out, classify(err)
}

// IgnoreDiscovered hides the account's proposals of name:port for good.
func (p *Postgres) IgnoreDiscovered(ctx context.Context, owner KeyRef, name string, port int) (bool, error) {
	var n int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		account, err := ownerAccount(ctx, tx, owner)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE discovered SET ignored_at = now()
			WHERE account_id = $1 AND name = $2 AND port = $3 AND ignored_at IS NULL`, account, name, port)
		n = tag.RowsAffected()
		return err
	})
	return n > 0, classify(err)
}

// AllDiscovered lists every proposal with its account's address.
func (p *Postgres) AllDiscovered(ctx context.Context) ([]Discovered, error) {
	rows, err := p.pool.Query(ctx, `SELECT a.email, d.site, d.name, d.port, d.source, d.addresses, d.first_seen, d.last_seen,
			d.gone_at, d.ignored_at,
			EXISTS (SELECT 1 FROM agent_targets t WHERE t.account_id = d.account_id AND t.name = d.name AND t.port = d.port
				AND `+liveSiteTarget("t")+`)
		FROM discovered d JOIN accounts a ON a.id = d.account_id
		ORDER BY a.email, d.site, d.name, d.port`)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, scanDiscovered)
	return out, classify(err)
}

func scanDiscovered(r pgx.CollectableRow) (Discovered, error) {
	var d Discovered
	err := r.Scan(&d.Email, &d.Site, &d.Name, &d.Port, &d.Source, &d.Addresses, &d.FirstSeen, &d.LastSeen,
		&d.Gone, &d.Ignored, &d.Added)
	return d, err
}

// discoveryFailingSQL reads, from an agent's untrusted summary, how many
// discovery sources its last pass could not read (0 unless a number;
// bounded to 0..1000).
const discoveryFailingSQL = `CASE WHEN jsonb_typeof(summary->'discovery_failed') = 'number'
	THEN least(greatest((summary->>'discovery_failed')::numeric, 0), 1000)::int ELSE 0 END`
