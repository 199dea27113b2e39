// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/acme"
)

// ACMEEvent is one journal line reported by a keychest-amp proxy, to
// store.
type ACMEEvent struct {
	acme.Event
	// Issued are the domains a valid order names, as the caller parsed
	// them: they become domains of the posting key when the event is new.
	Issued []NewDomain
}

// ACMEBatch is one report of events by one key.
type ACMEBatch struct {
	Key    KeyRef
	IP     netip.Addr // the client's
	Events []ACMEEvent
	// MaxDomainsPerKey caps the domains issued orders add (0: no limit).
	MaxDomainsPerKey int
	// RowsPerHour is the key's budget: the rows its events may cost per
	// hour (0: no limit); Cost is what this batch costs (see ACMERows).
	RowsPerHour, Cost int
}

// Errors of ACME reports.
var (
	// ErrACMENotAllowed: the key is not claimed, or its account is not
	// confirmed; only a confirmed account's keys report ACME events.
	ErrACMENotAllowed error = ownError("only a claimed key of a confirmed account may report ACME events")
	// ErrACMEBudget is what every BudgetError is.
	ErrACMEBudget error = ownError("the key's hourly budget of ACME event rows is used up")
)

// BudgetError refuses a batch past its key's hourly budget; Wait says
// when the budget covers it again.
type BudgetError struct{ Wait time.Duration }

// Error says the budget is used up, and when to retry.
func (e *BudgetError) Error() string {
	return ErrACMEBudget.Error() + ", retry in " + e.Wait.Round(time.Second).String()
}

// Is makes errors.Is(err, ErrACMEBudget) hold.
func (e *BudgetError) Is(target error) bool { return target == ErrACMEBudget }

// storeACMEEventsSQL inserts the batch in one statement for the key's id
// and returns the rows that were new.
const storeACMEEventsSQL = `
INSERT INTO acme_events (proxy, id, api_key_id, msg, event_time, params, envelope, received_ip)
SELECT b.proxy, b.id, $1, b.msg, b.event_time, b.params, b.envelope, $8
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::jsonb[])
     AS b(proxy, id, msg, event_time, params, envelope)
ON CONFLICT (api_key_id, proxy, id) DO NOTHING
RETURNING proxy, id`

// ACMEStored is what storing a batch did: how many events were new, the
// domains their issued orders added (and those refused at the key's
// domain limit), and the findings they opened, changed or closed.
type ACMEStored struct {
	Stored   int
	Added    int
	Refused  []string
	Findings []ACMEChange
}

// acmeKey is the posting key as the batch's transaction found it.
type acmeKey struct{ id, account int64 }

// StoreACMEEvents stores a batch for its key, in one transaction that
// ends with ctx: the key must belong to a confirmed account; the batch's
// cost comes out of the key's budget; events the key stored already are
// skipped; the new ones add the domains their valid orders issued, and
// derive findings (see acme_findings.go), so a resent batch neither loses
// nor doubles a finding or its mail.
func (p *Postgres) StoreACMEEvents(ctx context.Context, b ACMEBatch) (ACMEStored, error) {
	var out ACMEStored
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		out = ACMEStored{}
		key, err := lockACMEKey(ctx, tx, b.Key)
		if err != nil {
			return err
		}
		if err := takeACMEBudget(ctx, tx, key.id, b.RowsPerHour, b.Cost); err != nil {
			return err
		}
		fresh, err := insertEvents(ctx, tx, key.id, b.IP, b.Events)
		if err != nil {
			return err
		}
		out.Stored = len(fresh)
		if out.Added, out.Refused, err = addIssued(ctx, tx, b, fresh); err != nil {
			return err
		}
		out.Findings, err = acmeFindings(ctx, tx, key, fresh, time.Now(), p.alertBatch())
		return err
	})
	if err != nil {
		return ACMEStored{}, classify(err)
	}
	return out, nil
}

// lockACMEKey finds the posting key, locked as an add locks it, and
// refuses a key that may not report.
func lockACMEKey(ctx context.Context, tx pgx.Tx, k KeyRef) (acmeKey, error) {
	var key acmeKey
	var account *int64
	var revoked, blocked, confirmed bool
	err := tx.QueryRow(ctx, `SELECT k.id, k.account_id, k.revoked_at IS NOT NULL, coalesce(a.blocked_at IS NOT NULL, false),
			coalesce(a.confirmed_at IS NOT NULL, false) AND `+keyApproved+`
		FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1 FOR NO KEY UPDATE OF k`,
		k.Hash[:]).Scan(&key.id, &account, &revoked, &blocked, &confirmed)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return key, ErrUnknownKey
	case err != nil:
		return key, err
	case revoked:
		return key, ErrKeyRevoked
	case blocked:
		return key, ErrAccountBlocked
	case account == nil || !confirmed:
		return key, ErrACMENotAllowed
	}
	key.account = *account
	return key, nil
}

// insertEvents stores the events the key has not stored yet and returns
// them, in batch order.
func insertEvents(ctx context.Context, tx pgx.Tx, keyID int64, ip netip.Addr, events []ACMEEvent) ([]ACMEEvent, error) {
	n := len(events)
	proxies, ids, msgs := make([]string, n), make([]int64, n), make([]string, n)
	times := make([]*time.Time, n)
	params, envelopes := make([]string, n), make([]string, n)
	for i, e := range events {
		proxies[i], ids[i], msgs[i], params[i], envelopes[i] = e.Proxy, e.ID, e.Msg, string(e.Params), string(e.Envelope)
		if !e.Time.IsZero() {
			times[i] = &events[i].Time
		}
	}
	rows, err := tx.Query(ctx, storeACMEEventsSQL, keyID, proxies, ids, msgs, times, params, envelopes, inet(ip))
	if err != nil {
		return nil, err
	}
	return newEvents(rows, events)
}

// newEvents keeps, in batch order, the events whose keys rows returned.
func newEvents(rows pgx.Rows, events []ACMEEvent) ([]ACMEEvent, error) {
	type pk struct {
		proxy string
		id    int64
	}
	inserted := map[pk]bool{}
	var k pk
	if _, err := pgx.ForEachRow(rows, []any{&k.proxy, &k.id}, func() error {
		inserted[k] = true
		return nil
	}); err != nil {
		return nil, err
	}
	var out []ACMEEvent
	for _, e := range events {
		if inserted[pk{e.Proxy, e.ID}] {
			delete(inserted, pk{e.Proxy, e.ID})
			out = append(out, e)
		}
	}
	return out, nil
}

// addIssued adds, in the batch's transaction, the domains the new events'
// valid orders issued, as "add domain" would, with the key's domain limit.
// It returns how many it added and the names the limit refused.
func addIssued(ctx context.Context, tx pgx.Tx, b ACMEBatch, fresh []ACMEEvent) (int, []string, error) {
	var ops []*writeOp
	for _, e := range fresh {
		for _, d := range e.Issued {
			d.Key, d.IP, d.MaxPerKey = b.Key, b.IP, b.MaxDomainsPerKey
			if refuseEarly(d) == nil {
				ops = append(ops, addOp(d))
			}
		}
	}
	if len(ops) == 0 {
		return 0, nil, nil
	}
	batch := &pgx.Batch{}
	queueAdds(batch, ops)
	br := tx.SendBatch(ctx, batch)
	if err := readAdds(br, ops); err != nil {
		br.Close()
		return 0, nil, err
	}
	if err := br.Close(); err != nil {
		return 0, nil, err
	}
	added, refused := 0, []string(nil)
	for _, op := range ops {
		res, err := op.add.result()
		switch {
		case errors.Is(err, ErrDomainLimit):
			refused = append(refused, op.add.in.Name)
		case err != nil:
			return 0, nil, err
		case res.Outcome == DomainAdded:
			added++
		}
	}
	return added, refused, nil
}
