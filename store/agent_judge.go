// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// SiteJudge is what judging a relayed probe needs: the monitor's row of
// the job's target, leased like the central monitor leases a public one,
// and the same write-back (findings, history, alert items).
type SiteJudge interface {
	// LeaseSiteJob leases the monitor's row of a finished job's target to
	// owner until until, with what the judge needs of its past; false
	// when the job has no target or another process holds the row.
	LeaseSiteJob(ctx context.Context, job int64, owner string, now, until time.Time) (finding.Target, bool, error)
	// WriteBack writes verdicts as the monitor does (monitor_write.go).
	WriteBack(ctx context.Context, owner string, vs []finding.Verdict, alertBatch time.Duration) ([]bool, error)
	// Release lets leased rows go unwritten.
	Release(ctx context.Context, owner string, ids []int64) error
}

var _ SiteJudge = (*Postgres)(nil)

// leaseSiteSQL leases the row of job $1's target unless someone holds it.
const leaseSiteSQL = `UPDATE mon_targets t SET lease_owner = $2, lease_until = $3
	FROM agent_jobs j WHERE j.id = $1 AND t.site_target = j.target_id AND (t.lease_until IS NULL OR t.lease_until < $4)
	RETURNING t.id, t.name, t.port, coalesce(t.last_checked_at, 'epoch'), t.failures, t.suspects,
	    EXISTS (SELECT 1 FROM mon_observations o WHERE o.target_id = t.id AND o.fingerprint IS NOT NULL)`

// LeaseSiteJob leases the monitor's row of a finished job's target.
func (p *Postgres) LeaseSiteJob(ctx context.Context, job int64, owner string, now, until time.Time) (finding.Target, bool, error) {
	var t finding.Target
	found := false
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		// The row is made with the target (AddSiteTarget); this makes it
		// for a target added before it was.
		if _, err := tx.Exec(ctx, `INSERT INTO mon_targets (name, port, site_target)
			SELECT s.name, s.port, s.id FROM agent_jobs j JOIN agent_targets s ON s.id = j.target_id WHERE j.id = $1
			ON CONFLICT (site_target) DO NOTHING`, job); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, leaseSiteSQL, job, owner, until, now).
			Scan(&t.ID, &t.Name, &t.Port, &t.LastChecked, &t.Failures, &t.Suspects, &t.CertSeen)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if t.LastChecked.Equal(time.Unix(0, 0)) {
			t.LastChecked = time.Time{}
		}
		found = true
		ts := []finding.Target{t}
		if err := loadPast(ctx, tx, ts); err != nil {
			return err
		}
		t = ts[0]
		return nil
	})
	return t, found, classify(err)
}
