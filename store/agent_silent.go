// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// AgentWatch is a claimed agent's own row, leased for the judge of its
// silence: the row's past, and when the agent last called in.
type AgentWatch struct {
	Target   finding.Target
	LastSeen time.Time
}

// ensureAgentRowsSQL gives each claimed agent its row in mon_targets
// (named by its id, port 0; not public, so never probed).
const ensureAgentRowsSQL = `INSERT INTO mon_targets (name, port, agent, state, last_checked_at)
	SELECT g.agent_id, 0, g.id, 'ok', now() FROM agents g
	WHERE g.account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM mon_targets t WHERE t.agent = g.id)
	ON CONFLICT (agent) DO NOTHING`

// leaseAgentsSQL leases, up to $5, the rows of agents whose silence is to
// be judged now: silent for $4 without an open agent_silent finding, or
// heard from within $4 with one. Rows another process holds are skipped.
const leaseAgentsSQL = `
WITH due AS (
    SELECT t.id, g.last_seen_at FROM mon_targets t JOIN agents g ON g.id = t.agent
    WHERE g.account_id IS NOT NULL AND (t.lease_until IS NULL OR t.lease_until < $1)
      AND (g.last_seen_at < $1::timestamptz - $4::interval) <> EXISTS (SELECT 1 FROM mon_findings f
          WHERE f.target_id = t.id AND f.kind = $6 AND f.closed_at IS NULL)
    ORDER BY t.id LIMIT $5
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE mon_targets t SET lease_owner = $2, lease_until = $3 FROM due WHERE t.id = due.id
RETURNING t.id, t.name, t.port, coalesce(t.last_checked_at, 'epoch'), t.failures, t.suspects, due.last_seen_at`

// LeaseAgents leases to owner until until the rows of the claimed agents
// whose silence changed (silent for silentAfter, or heard from again),
// with their past.
func (p *Postgres) LeaseAgents(ctx context.Context, owner string, now, until time.Time, silentAfter time.Duration, n int) ([]AgentWatch, error) {
	var out []AgentWatch
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ensureAgentRowsSQL); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, leaseAgentsSQL, now, owner, until, silentAfter, n, finding.KindAgentSilent)
		if err != nil {
			return err
		}
		out = nil
		var targets []finding.Target
		var seen []time.Time
		for rows.Next() {
			var t finding.Target
			var last time.Time
			if err := rows.Scan(&t.ID, &t.Name, &t.Port, &t.LastChecked, &t.Failures, &t.Suspects, &last); err != nil {
				return err
			}
			t.CertSeen = true // an agent's row has no certificate to wait for: its state is its findings'
			targets, seen = append(targets, t), append(seen, last)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := loadPast(ctx, tx, targets); err != nil {
			return err
		}
		for i := range targets {
			out = append(out, AgentWatch{Target: targets[i], LastSeen: seen[i]})
		}
		return nil
	})
	return out, classify(err)
}
