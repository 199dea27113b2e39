// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// SiteJudge is what judging a relayed probe needs: the monitor's row of
// the job's target, leased like the central monitor leases a public one,
// and the same write-back (findings, history, alert items).
type SiteJudge interface {
	// LeaseSiteJobs leases the monitor's rows of finished jobs' targets to
	// owner until until, with what the judge needs of their past and what
	// the probes through each job's relays saw; a job without a target, or
	// whose row another process holds, is left out.
	LeaseSiteJobs(ctx context.Context, jobs []int64, owner string, now, until time.Time) ([]SiteJob, error)
	// WriteBack writes verdicts as the monitor does (monitor_write.go).
	WriteBack(ctx context.Context, owner string, vs []finding.Verdict, alertBatch time.Duration) ([]bool, error)
	// Release lets leased rows go unwritten.
	Release(ctx context.Context, owner string, ids []int64) error
}

var _ SiteJudge = (*Postgres)(nil)

// SiteJob is a finished job's target, leased for its verdict, and the
// stored results of the job's relays (JSON, in address order).
type SiteJob struct {
	Job    int64
	Target finding.Target
	Relays [][]byte
}

// leaseSiteSQL leases the rows of jobs $1's targets unless someone holds them.
const leaseSiteSQL = `UPDATE mon_targets t SET lease_owner = $2, lease_until = $3
	FROM agent_jobs j WHERE j.id = ANY($1) AND t.site_target = j.target_id AND t.active AND (t.lease_until IS NULL OR t.lease_until < $4)
	RETURNING j.id, t.id, t.name, t.port, coalesce(t.last_checked_at, 'epoch'), t.failures, t.suspects,
	    EXISTS (SELECT 1 FROM mon_observations o WHERE o.target_id = t.id AND o.fingerprint IS NOT NULL)`

// LeaseSiteJobs leases the monitor's rows of finished jobs' targets, in
// one transaction with the reads the judge needs.
func (p *Postgres) LeaseSiteJobs(ctx context.Context, jobs []int64, owner string, now, until time.Time) ([]SiteJob, error) {
	var out []SiteJob
	if len(jobs) == 0 {
		return nil, nil
	}
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		out = nil
		// The row is made with the target (AddSiteTarget); this makes it
		// for a target added before it was.
		if _, err := tx.Exec(ctx, `INSERT INTO mon_targets (name, port, site_target)
			SELECT s.name, s.port, s.id FROM agent_jobs j JOIN agent_targets s ON s.id = j.target_id WHERE j.id = ANY($1)
			ORDER BY s.id ON CONFLICT (site_target) DO NOTHING`, jobs); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, leaseSiteSQL, jobs, owner, until, now)
		if err != nil {
			return err
		}
		var j SiteJob
		t := &j.Target
		if _, err := pgx.ForEachRow(rows, []any{&j.Job, &t.ID, &t.Name, &t.Port, &t.LastChecked, &t.Failures, &t.Suspects, &t.CertSeen}, func() error {
			if t.LastChecked.Equal(time.Unix(0, 0)) {
				t.LastChecked = time.Time{}
			}
			out = append(out, j)
			return nil
		}); err != nil {
			return err
		}
		return loadSiteJobs(ctx, tx, out)
	})
	return out, classify(err)
}

// loadSiteJobs reads the leased targets' past and the jobs' relays.
func loadSiteJobs(ctx context.Context, tx pgx.Tx, sj []SiteJob) error {
	if len(sj) == 0 {
		return nil
	}
	ts, ids := make([]finding.Target, len(sj)), make([]int64, len(sj))
	at := make(map[int64]int, len(sj))
	for i := range sj {
		ts[i], ids[i], at[sj[i].Job] = sj[i].Target, sj[i].Job, i
	}
	if err := loadPast(ctx, tx, ts); err != nil {
		return err
	}
	for i := range sj {
		sj[i].Target = ts[i]
	}
	rows, err := tx.Query(ctx, `SELECT job_id, result FROM agent_job_relays WHERE job_id = ANY($1) AND result IS NOT NULL
		ORDER BY job_id, address`, ids)
	if err != nil {
		return err
	}
	var job int64
	var res []byte
	_, err = pgx.ForEachRow(rows, []any{&job, &res}, func() error {
		sj[at[job]].Relays = append(sj[at[job]].Relays, slices.Clone(res))
		return nil
	})
	return err
}
