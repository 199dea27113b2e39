// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// A target behind a site is removed as a public domain is: it stops being
// the key's (not listed, counted, probed, paged, digested or alerted),
// while its monitor's row keeps its history (observations, findings,
// events) until Housekeep's cutoff (KEYCHEST_MONITOR_HISTORY), and an
// add of the same name and port within that time takes it up again. Its
// agent_targets row stays, since its mon_targets row hangs on it; what
// marks it removed is that row, inactive with its removed_at, as a
// public target no domain names any more is marked. Its next_due is
// pushed to infinity, so that no agent is given a job for it, and its
// jobs still open are let go of their target, so that no verdict lands
// on it.

// liveSiteTarget is the condition under which agent_targets row alias
// is a target (not removed): its monitor's row, if it has one yet, is
// active. A scalar subquery, not a NOT EXISTS: PostgreSQL would make that
// an anti-join reading every inactive row (TestAddPlanUsesIndexes).
func liveSiteTarget(alias string) string {
	return `coalesce((SELECT rm.active FROM mon_targets rm WHERE rm.site_target = ` + alias + `.id), true)`
}

// removeSiteTargetSQL marks the live target ($2 name, $3 port) of the key
// ($1 key hash; not revoked, approved) removed: its monitor's row (made if the target has none yet)
// inactive, never due, its open jobs let go; it returns when and from
// where the target was added, and its site, for the audit.
var removeSiteTargetSQL = `
WITH s AS (
    SELECT s.id, s.site, s.created_at, s.created_ip FROM agent_targets s JOIN api_keys k ON k.id = s.api_key_id
    WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND ` + keyApproved + ` AND s.name = $2 AND s.port = $3 AND ` + liveSiteTarget("s") + `
    FOR UPDATE OF s
), due AS (
    UPDATE agent_targets t SET next_due = 'infinity' FROM s WHERE t.id = s.id
), jobs AS (
    UPDATE agent_jobs j SET target_id = NULL FROM s WHERE j.target_id = s.id AND j.done_at IS NULL
), mon AS (
    INSERT INTO mon_targets (name, port, site_target, active, removed_at)
    SELECT $2, $3, s.id, false, now() FROM s
    ON CONFLICT (site_target) DO UPDATE SET active = false, removed_at = now()
)
SELECT site, created_at, created_ip FROM s`

// removeSiteTarget marks a target of the key behind a site removed, and
// audits it as "domain.remove" (with its site) as RemoveDomain does;
// false when the key has no such target.
func (p *Postgres) removeSiteTarget(ctx context.Context, k KeyRef, name string, port int) (bool, error) {
	removed := false
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// The key's lock first, as adds take it (AddSiteTarget): an add
		// that read the target as held must not upsert it after this
		// removal committed, which would leave it listed, never due.
		if _, err := tx.Exec(ctx, lockKeysSQL, [][]byte{k.Hash[:]}); err != nil {
			return err
		}
		var site string
		var added time.Time
		var addedIP *netip.Addr
		err := tx.QueryRow(ctx, removeSiteTargetSQL, k.Hash[:], name, port).Scan(&site, &added, &addedIP)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		removed = true
		_, err = tx.Exec(ctx, `INSERT INTO audit (action, key_prefix, detail)
			VALUES ('domain.remove', $1, jsonb_build_object('domain', $2::text, 'port', $3::int, 'site', $4::text,
				'added_at', $5::timestamptz, 'added_ip', host($6::inet)))`, k.Prefix, name, port, site, added, addedIP)
		return err
	})
	return removed, classify(err)
}

// purgeRemovedSiteTargetsSQL deletes the targets behind sites removed
// before the cutoff $1, with their monitor's rows (and so their
// history): Housekeep runs it before it deletes the inactive rows, which
// would leave such a target without the row that marks it removed.
// The monitor's row is read, not locked (locking it before the target
// would take the two in the order opposite to adds and removals), so
// the condition is checked again on the target's row the DELETE locks:
// a removed target is never due (next_due infinity), and an add of it
// that committed meanwhile made it due, which keeps it.
const purgeRemovedSiteTargetsSQL = `DELETE FROM agent_targets s USING mon_targets m
	WHERE m.site_target = s.id AND NOT m.active AND m.removed_at < $1 AND s.next_due = 'infinity'`
