// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/acme"
	"github.com/keychest/keychest-lined/finding"
)

// notRenewingSQL finds, per account, the targets whose certificate is in
// its warning window (an open expiry finding, opened at least $2 ago),
// whose name the account's proxies once saw an ACME order for, and for
// which they saw no order since the window began. Only the orders seen
// through a working, approved key of a confirmed, unblocked account count,
// and only for a name that account still holds (as ACME events touch only
// names their account holds).
const notRenewingSQL = `
SELECT t.id, t.name, k.account_id, f.severity, f.opened_at, max(d.order_at), min(d.proxy)
FROM mon_targets t
JOIN mon_findings f ON f.target_id = t.id AND f.kind = $4 AND f.closed_at IS NULL AND f.account_id IS NULL
JOIN acme_domains d ON d.name = t.name AND d.order_at IS NOT NULL
JOIN api_keys k ON k.id = d.api_key_id AND k.revoked_at IS NULL AND ` + keyApproved + `
JOIN accounts a ON a.id = k.account_id AND a.confirmed_at IS NOT NULL AND a.blocked_at IS NULL
WHERE t.active AND t.public AND t.port = $3 AND ` + targetInTrouble + ` AND f.opened_at <= $1::timestamptz - $2::interval
  AND EXISTS (SELECT 1 FROM domains hd JOIN api_keys k ON k.id = hd.api_key_id
              WHERE k.account_id = a.id AND k.revoked_at IS NULL AND ` + keyApproved + `
                AND (hd.name = t.name OR hd.name = '*.' || t.name))
GROUP BY t.id, t.name, k.account_id, f.severity, f.opened_at
HAVING max(d.order_at) < f.opened_at`

// CheckRenewals gathers the domains whose certificate entered its warning
// window more than acme.RenewalGrace ago with no ACME order seen for them
// since, opens (or raises) on each the finding acme.NotRenewing says, and
// closes those no longer true (renewed, or the window left). Each finding
// is the account's whose proxies saw the orders. Alerts are queued as for
// the monitor's findings, to that account.
func (p *Postgres) CheckRenewals(ctx context.Context, now time.Time) ([]ACMEChange, error) {
	var changes []ACMEChange
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		fw := &findingWriter{tx: tx, now: now, batch: p.alertBatch()}
		rows, err := tx.Query(ctx, notRenewingSQL, now, acme.RenewalGrace, acme.Port, finding.KindExpiry)
		if err != nil {
			return err
		}
		type stale struct {
			id, account int64
			name        string
			acme.Unrenewed
		}
		due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stale, error) {
			var s stale
			err := r.Scan(&s.id, &s.name, &s.account, &s.Severity, &s.WarnSince, &s.LastOrder, &s.Proxy)
			return s, err
		})
		if err != nil {
			return err
		}
		keep := findingKeys{}
		for _, s := range due {
			keep.targets, keep.accounts = append(keep.targets, s.id), append(keep.accounts, s.account)
			fw.account = s.account
			if err := fw.open(ctx, s.id, s.name, acme.NotRenewing(s.Unrenewed)); err != nil {
				return err
			}
		}
		if err := fw.closeStale(ctx, keep); err != nil {
			return err
		}
		changes = fw.changes
		return nil
	})
	return changes, classify(err)
}

// findingKeys are (target, account) pairs.
type findingKeys struct{ targets, accounts []int64 }

// closeStale closes the open acme_not_renewing findings other than keep's.
func (fw *findingWriter) closeStale(ctx context.Context, keep findingKeys) error {
	rows, err := fw.tx.Query(ctx, `SELECT t.id, t.name, f.account_id FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE f.kind = $1 AND f.closed_at IS NULL AND NOT EXISTS (
			SELECT 1 FROM unnest($2::bigint[], $3::bigint[]) AS k(target_id, account_id)
			WHERE k.target_id = f.target_id AND k.account_id = f.account_id)`, finding.KindACMENotRenewing, keep.targets, keep.accounts)
	if err != nil {
		return err
	}
	type gone struct {
		ID      int64
		Name    string
		Account int64
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[gone])
	if err != nil {
		return err
	}
	for _, g := range list {
		fw.account = g.Account
		if err := fw.close(ctx, g.ID, g.Name, []string{finding.KindACMENotRenewing}, acme.WhyRenewed); err != nil {
			return err
		}
	}
	return nil
}

// ACMEActivity is the latest ACME activity seen for one domain at one
// proxy.
type ACMEActivity struct {
	Name        string     `json:"name"`
	Proxy       string     `json:"proxy"`
	Order       string     `json:"order"`
	OrderStatus string     `json:"order_status"`
	OrderAt     *time.Time `json:"order_at"`
	ValidAt     *time.Time `json:"valid_at"`
	Error       string     `json:"error"`
	ErrorAt     *time.Time `json:"error_at"`
	Updated     time.Time  `json:"updated"`
}

// ACMEActivities lists the ACME activity per domain, latest first: all,
// or that of one account's proxies.
func (p *Postgres) ACMEActivities(ctx context.Context, email string) ([]ACMEActivity, error) {
	rows, err := p.pool.Query(ctx, `SELECT d.name, d.proxy, d.order_path, d.order_status, d.order_at, d.valid_at,
			d.error, d.error_at, d.updated_at
		FROM acme_domains d JOIN api_keys k ON k.id = d.api_key_id LEFT JOIN accounts a ON a.id = k.account_id
		WHERE $1 = '' OR a.email = $1
		ORDER BY d.updated_at DESC, d.name, d.proxy`, email)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ACMEActivity, error) {
		var a ACMEActivity
		err := r.Scan(&a.Name, &a.Proxy, &a.Order, &a.OrderStatus, &a.OrderAt, &a.ValidAt, &a.Error, &a.ErrorAt, &a.Updated)
		return a, err
	})
	return out, classify(err)
}
