// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keychest/keychest-lined/store"
)

// A target's jobs are found through the index on their target, never by
// a scan of agent_jobs, which holds every job of the last day: when the
// removal of a target lets go of its open jobs, and when Housekeep's
// purge of a removed target cascades to all its jobs.
func TestSiteRemovalPlanUsesIndexes(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	createdKey(t, p, "plan-removal-0123456789")
	db := pool(t, url)
	if _, err := db.Exec(ctx, `WITH a AS (INSERT INTO accounts (email, confirmed_at) VALUES ('plan@example.com', now()) RETURNING id),
			k AS (UPDATE api_keys SET account_id = (SELECT id FROM a) RETURNING id, account_id),
			s AS (INSERT INTO agent_targets (account_id, api_key_id, site, name, port)
				SELECT k.account_id, k.id, 'office', 's' || g || '.corp.example', 443 FROM k, generate_series(1, 1000) g
				RETURNING id, account_id, name, port)
		INSERT INTO agent_jobs (account_id, site, name, port, expires_at, done_at, target_id)
		SELECT s.account_id, 'office', s.name, s.port, now(), now(), s.id FROM s, generate_series(1, 20) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `ANALYZE agent_targets; ANALYZE agent_jobs; ANALYZE api_keys; ANALYZE mon_targets`); err != nil {
		t.Fatal(err)
	}
	statements := map[string]string{
		"removal": store.RemoveSiteTargetSQL,
		// What the cascade of a target's deletion runs on agent_jobs.
		"cascade": `DELETE FROM ONLY agent_jobs WHERE $1::bigint IS NOT NULL AND target_id = $1`,
	}
	args := map[string]string{"removal": `sha256('plan-removal-0123456789'::bytea), 's7.corp.example', 443`, "cascade": "7"}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		for what, sql := range statements {
			plan := explainPrepared(t, db, mode, what, sql, args[what])
			if scans := plan.scansOf("agent_jobs"); scans > 0 {
				logPlan(t, plan, "")
				t.Errorf("%s, the %s: the plan scans agent_jobs %d times", mode, what, scans)
			}
		}
	}
}

// explainPrepared explains the statement sql, prepared as name, executed
// with args under the plan cache mode.
func explainPrepared(t *testing.T, db *pgxpool.Pool, mode, name, sql, args string) planNode {
	ctx := context.Background()
	conn, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	name = fmt.Sprintf("%s_%s", name, mode)
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode+`; PREPARE `+name+` AS `+sql); err != nil {
		t.Fatal(err)
	}
	var plan string
	if err := conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) EXECUTE `+name+`(`+args+`)`).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var root []struct{ Plan planNode }
	if err := json.Unmarshal([]byte(plan), &root); err != nil {
		t.Fatal(err)
	}
	return root[0].Plan
}
