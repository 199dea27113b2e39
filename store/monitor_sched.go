// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// activeDomain is the condition under which a domain is watched: its
// account is confirmed and not blocked, and its key is neither revoked
// nor waiting for the owner's approval.
const activeDomain = `a.confirmed_at IS NOT NULL AND a.blocked_at IS NULL AND k.revoked_at IS NULL AND ` + keyApproved

// targetInTrouble is the condition under which target t has a problem:
// its state says an open finding of warning or worse (the monitor's
// StateWarning and StateCritical).
const targetInTrouble = `t.state IN ('warning', 'critical')`

// keyApproved is the condition under which a key of an account speaks for
// it: a key claimed onto a confirmed account waits for the owner's
// approval, and until then its domains appear in none of the account's
// mails and pages.
const keyApproved = `k.pending_at IS NULL`

// syncTargetsSQL creates a target for every name and port of an active,
// non-wildcard domain added, confirmed or approved since $1, due at $2, and wakes a
// target that had become inactive. Active targets are left out before the
// insert: ON CONFLICT DO UPDATE would lock them (even when its WHERE is
// false) until the sync commits, and deadlock with write-backs.
const syncTargetsSQL = `
INSERT INTO mon_targets (name, port, next_due)
SELECT DISTINCT d.name, d.port, $2::timestamptz
FROM domains d JOIN api_keys k ON k.id = d.api_key_id JOIN accounts a ON a.id = k.account_id
WHERE NOT d.wildcard AND ` + activeDomain + ` AND (d.created_at >= $1 OR a.confirmed_at >= $1 OR k.approved_at >= $1)
  AND NOT EXISTS (SELECT 1 FROM mon_targets t WHERE t.public AND t.name = d.name AND t.port = d.port AND t.active)
ON CONFLICT (name, port) WHERE public DO UPDATE SET active = true, removed_at = NULL, next_due = EXCLUDED.next_due
WHERE NOT mon_targets.active`

// SyncTargets makes targets of the active domains added or confirmed since
// since (the zero time: all of them), due at due. It returns the
// database's clock at the start, the since of the next call.
func (p *Postgres) SyncTargets(ctx context.Context, since, due time.Time) (time.Time, error) {
	var started time.Time
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&started); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, syncTargetsSQL, since, due)
		return err
	})
	return started, classify(err)
}

// leaseSQL takes up to $4 due targets nobody holds (or whose lease ran
// out), skipping rows another monitor is taking right now. Only public
// targets: one behind a site is probed through its agents alone, and an
// agent's row is judged by CheckAgents. A target no
// active domain names any more is marked inactive instead of leased. It
// returns, besides the target, whether any of its observations (current
// or history) holds a certificate.
const leaseSQL = `
WITH due AS (
    SELECT id, name, port FROM mon_targets
    WHERE active AND public AND next_due <= $1 AND (lease_until IS NULL OR lease_until < $1)
    ORDER BY next_due LIMIT $4
    FOR UPDATE SKIP LOCKED
), live AS (
    SELECT due.id, EXISTS (
        SELECT 1 FROM domains d JOIN api_keys k ON k.id = d.api_key_id JOIN accounts a ON a.id = k.account_id
        WHERE d.name = due.name AND d.port = due.port AND ` + activeDomain + `) AS active
    FROM due
)
UPDATE mon_targets t SET
    active = live.active,
    removed_at = CASE WHEN live.active THEN NULL ELSE $1 END,
    lease_owner = CASE WHEN live.active THEN $2 END,
    lease_until = CASE WHEN live.active THEN $3::timestamptz END
FROM live WHERE t.id = live.id
RETURNING t.id, t.name, t.port, t.active, coalesce(t.last_checked_at, 'epoch'), t.failures, t.suspects,
    EXISTS (SELECT 1 FROM mon_observations o WHERE o.target_id = t.id AND o.fingerprint IS NOT NULL)`

// Lease gives owner up to n due targets until until, with what the judge
// needs of their past.
func (p *Postgres) Lease(ctx context.Context, owner string, now, until time.Time, n int) ([]finding.Target, error) {
	var out []finding.Target
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, leaseSQL, now, owner, until, n)
		if err != nil {
			return err
		}
		out = nil
		for rows.Next() {
			var t finding.Target
			var active bool
			if err := rows.Scan(&t.ID, &t.Name, &t.Port, &active, &t.LastChecked, &t.Failures, &t.Suspects, &t.CertSeen); err != nil {
				return err
			}
			if t.LastChecked.Equal(time.Unix(0, 0)) {
				t.LastChecked = time.Time{}
			}
			if active {
				out = append(out, t)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return loadPast(ctx, tx, out)
	})
	if err != nil {
		return nil, classify(err)
	}
	return out, nil
}

// loadPast fills in the current observations and open findings of targets.
func loadPast(ctx context.Context, tx pgx.Tx, targets []finding.Target) error {
	if len(targets) == 0 {
		return nil
	}
	ids := make([]int64, len(targets))
	byID := make(map[int64]*finding.Target, len(targets))
	for i := range targets {
		ids[i] = targets[i].ID
		targets[i].Served, targets[i].Open = map[netip.Addr]finding.Served{}, map[string]finding.OpenFinding{}
		byID[targets[i].ID] = &targets[i]
	}
	rows, err := tx.Query(ctx, `SELECT o.target_id, o.address, o.fingerprint, coalesce(o.error_class, ''),
			coalesce(c.not_before, 'epoch'), coalesce(c.not_after, 'epoch')
		FROM mon_observations o LEFT JOIN mon_certs c ON c.fingerprint = o.fingerprint
		WHERE o.target_id = ANY($1) AND o.ended_at IS NULL`, ids)
	if err != nil {
		return err
	}
	var id int64
	var addr netip.Addr
	var s finding.Served
	if _, err := pgx.ForEachRow(rows, []any{&id, &addr, &s.Fingerprint, &s.ErrorClass, &s.NotBefore, &s.NotAfter}, func() error {
		byID[id].Served[addr] = s
		return nil
	}); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `SELECT target_id, kind, severity, detail, opened_at FROM mon_findings
		WHERE target_id = ANY($1) AND closed_at IS NULL AND kind NOT LIKE 'acme\_%'`, ids) // ACME findings (acme_findings.go) are not the judge's
	if err != nil {
		return err
	}
	var f finding.OpenFinding
	_, err = pgx.ForEachRow(rows, []any{&id, &f.Kind, &f.Severity, &f.Detail, &f.OpenedAt}, func() error {
		byID[id].Open[f.Kind] = f
		return nil
	})
	return err
}

// Release gives back owner's leases on ids without probing them: they are
// due again at once for any monitor.
func (p *Postgres) Release(ctx context.Context, owner string, ids []int64) error {
	_, err := p.pool.Exec(ctx, `UPDATE mon_targets SET lease_owner = NULL, lease_until = NULL
		WHERE id = ANY($1) AND lease_owner = $2`, ids, owner)
	return classify(err)
}
