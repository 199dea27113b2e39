// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/acme"
	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/words"
)

// ACMEChange is a finding that ACME events or the renewal check opened,
// changed or closed.
type ACMEChange struct {
	Target   string // name:port
	Kind     string
	Change   string // opened, changed or closed
	Severity string
	Detail   string
}

// alertBatch is the batch WithAlertBatch set, or its default.
func (p *Postgres) alertBatch() time.Duration {
	if p.alertBatchSet > 0 {
		return p.alertBatchSet
	}
	return finding.DefaultAlertBatch
}

// acmeFindings applies, in the transaction that stored them, what new
// events say: the activity per domain, and the findings the ACME judge
// opens and closes for each event, then for each ACME account's counts.
func acmeFindings(ctx context.Context, tx pgx.Tx, key acmeKey, events []ACMEEvent, now time.Time, batch time.Duration) ([]ACMEChange, error) {
	fw := &findingWriter{tx: tx, now: now, batch: batch, account: key.account}
	var facts []acme.Facts
	for _, e := range events {
		f := acme.Read(e.Event, now)
		f.Account.KeyID = key.id
		if err := recordActivity(ctx, fw, f); err != nil {
			return nil, err
		}
		if err := fw.apply(ctx, acme.JudgeEvent(f)); err != nil {
			return nil, err
		}
		facts = append(facts, f)
	}
	nonces, failures := acme.ToCount(facts)
	for acct, f := range nonces {
		n, err := countNonces(ctx, tx, acct, f.At)
		if err == nil {
			err = fw.apply(ctx, acme.Storm(f, n))
		}
		if err != nil {
			return nil, err
		}
	}
	for acct, f := range failures {
		var n int
		err := tx.QueryRow(ctx, failingSQL, acct.Proxy, acct.Server, acct.ID, f.At.Add(-acme.AccountFailWindow), f.At, acct.KeyID).Scan(&n)
		if err == nil {
			err = fw.apply(ctx, acme.Failing(f, n))
		}
		if err != nil {
			return nil, err
		}
	}
	return fw.changes, nil
}

// apply opens and closes what the judge decided, on the names the
// writer's account holds.
func (fw *findingWriter) apply(ctx context.Context, changes []acme.Change) error {
	for _, c := range changes {
		names := c.Names
		if c.OnAccount {
			var err error
			if names, err = accountDomains(ctx, fw.tx, c.Account, c.At); err != nil {
				return err
			}
		}
		var err error
		if c.Open != nil {
			err = fw.openAll(ctx, names, *c.Open)
		} else {
			err = fw.closeAll(ctx, names, c.Close, c.Why)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// countNonces counts an account's badNonce errors within the window up to
// at.
func countNonces(ctx context.Context, tx pgx.Tx, acct acme.Account, at time.Time) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM acme_events WHERE api_key_id = $6 AND proxy = $1 AND params->>'server' = $2
		AND params->>'account' = $3 AND params->'problem'->>'type' LIKE '%:badNonce'
		AND coalesce(event_time, received_at) BETWEEN $4 AND $5`,
		acct.Proxy, acct.Server, acct.ID, at.Add(-acme.BadNonceWindow), at, acct.KeyID).Scan(&n)
	return n, err
}

// failingSQL counts an account's failures in the window since its last
// valid order.
const failingSQL = `
SELECT count(*) FROM acme_events e
WHERE e.api_key_id = $6 AND e.proxy = $1 AND e.params->>'server' = $2 AND e.params->>'account' = $3
  AND coalesce(e.event_time, e.received_at) BETWEEN greatest($4, (
      SELECT max(coalesce(v.event_time, v.received_at)) FROM acme_events v
      WHERE v.api_key_id = $6 AND v.proxy = $1 AND v.params->>'server' = $2 AND v.params->>'account' = $3
        AND v.msg IN ('order', 'final', 'new-order') AND v.params->>'status' = 'valid')) AND $5
  AND (e.params->'problem'->>'type' NOT LIKE '%:badNonce' OR (e.msg = 'auth' AND e.params->>'status' = 'invalid'))`

// accountDomains lists the domains an ACME account ordered recently, as
// the posting key's events told.
func accountDomains(ctx context.Context, tx pgx.Tx, acct acme.Account, at time.Time) ([]string, error) {
	if acct.ID == "" {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT name FROM acme_domains WHERE api_key_id = $4 AND proxy = $1 AND account = $2 AND updated_at >= $3
		ORDER BY name`, acct.Proxy, acct.Key(), at.Add(-acme.AccountDomainsAge), acct.KeyID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// recordActivitySQL keeps the latest ACME activity of a domain at a
// proxy, as one key's events tell it.
const recordActivitySQL = `
INSERT INTO acme_domains AS d (name, proxy, api_key_id, account, order_path, order_status, order_at, valid_at, error, error_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN $8::timestamptz END, CASE WHEN $7 AND $6 = 'valid' THEN $8::timestamptz END,
        $9, CASE WHEN $9 <> '' THEN $8::timestamptz END, $8)
ON CONFLICT (api_key_id, proxy, name) DO UPDATE SET
    account = CASE WHEN EXCLUDED.account <> '' THEN EXCLUDED.account ELSE d.account END,
    order_path = CASE WHEN $7 AND EXCLUDED.order_path <> '' THEN EXCLUDED.order_path ELSE d.order_path END,
    order_status = CASE WHEN $7 THEN EXCLUDED.order_status ELSE d.order_status END,
    order_at = greatest(d.order_at, EXCLUDED.order_at),
    valid_at = greatest(d.valid_at, EXCLUDED.valid_at),
    error = CASE WHEN EXCLUDED.error <> '' THEN EXCLUDED.error ELSE d.error END,
    error_at = CASE WHEN EXCLUDED.error <> '' THEN EXCLUDED.error_at ELSE d.error_at END,
    updated_at = greatest(d.updated_at, EXCLUDED.updated_at)`

// recordActivity updates acme_domains for every name an event gives
// that the account holds.
func recordActivity(ctx context.Context, fw *findingWriter, f acme.Facts) error {
	names, err := fw.held(ctx, f.Names)
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := fw.tx.Exec(ctx, recordActivitySQL, name, f.Account.Proxy, f.Account.KeyID, f.Account.Key(), f.Order, f.OrderStatus(),
			f.IsOrder(), f.At, words.Clean(f.Failure(), acme.MaxDetail)); err != nil {
			return err
		}
	}
	return nil
}
