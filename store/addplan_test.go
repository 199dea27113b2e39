// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keychest/keychest-lined/store"
)

// The adds' set statement must look a batch's rows up through indexes,
// never scan the domains table: a scan per batch costs PostgreSQL more
// with every domain stored, while index look-ups cost the same at any
// size (docs/add-path.md has the figures).
// PostgreSQL may plan an EXISTS in a select list as a hashed subplan,
// which reads the whole table once per execution: with the EXISTS the
// statement had, it did so for a batch of 512 adds. Checked here for
// batches of 1, 16 and 512, with custom and generic plans (pgx's cached
// statement may get either).
func TestAddPlanUsesIndexes(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	createdKey(t, p, "plan-shape-0123456789")
	db := pool(t, url)
	if _, err := db.Exec(ctx, `INSERT INTO domains (api_key_id, name, port, created_ip)
		SELECT (SELECT id FROM api_keys LIMIT 1), 'n' || g || '.example', 443, '192.0.2.1'
		FROM generate_series(1, 20000) g`); err != nil {
		t.Fatal(err)
	}
	// A key's targets behind sites count toward its cap: those of 20 keys,
	// 1,000 each with its monitor's row, are read through indexes too.
	for i := range 20 {
		createdKey(t, p, fmt.Sprintf("plan-sites-%d-0123456789", i))
	}
	if _, err := db.Exec(ctx, `WITH a AS (INSERT INTO accounts (email, confirmed_at) VALUES ('plan@example.com', now()) RETURNING id),
			k AS (UPDATE api_keys SET account_id = (SELECT id FROM a) RETURNING id, account_id),
			s AS (INSERT INTO agent_targets (account_id, api_key_id, site, name, port)
				SELECT k.account_id, k.id, 'office', 's' || g || '.corp.example', 443 FROM k, generate_series(1, 1000) g
				WHERE k.id <> (SELECT min(id) FROM api_keys) RETURNING id, name, port)
		INSERT INTO mon_targets (name, port, site_target) SELECT name, port, id FROM s`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `ANALYZE domains; ANALYZE api_keys; ANALYZE accounts; ANALYZE agent_targets; ANALYZE mon_targets`); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		for _, n := range []int{1, 16, 512} {
			plan := addsPlan(t, db, mode, n)
			for _, table := range []string{"domains", "agent_targets", "mon_targets"} {
				if scans := plan.scansOf(table); scans > 0 {
					logPlan(t, plan, "")
					t.Errorf("%s, %d adds: the plan scans %s %d times", mode, n, table, scans)
				}
			}
		}
	}
	// What a key holds is counted once per key of a batch, not once per
	// add: 16 adds of a key with 1,000 targets behind sites read its
	// targets once.
	if loops := addsRun(t, db, "plan-sites-0-0123456789", 16).loopsOf("agent_targets"); loops != 1 {
		t.Errorf("16 adds of one key read its targets behind sites %d times", loops)
	}
}

// addsRun runs the set statement for a batch of n adds of key, in a
// transaction it rolls back, and returns the plan with its counts.
func addsRun(t *testing.T, db *pgxpool.Pool, key string, n int) planNode {
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	keys, names, ports, wild, ips, caps := make([][]byte, n), make([]string, n), make([]int32, n), make([]bool, n), make([]string, n), make([]int32, n)
	for i := range n {
		h := ref(key).Hash
		keys[i], names[i], ports[i], ips[i], caps[i] = h[:], fmt.Sprintf("y%d.example", i), 443, "192.0.2.1", 5000
	}
	var plan []byte
	if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+store.AddDomainsSQL, keys, names, ports, wild, ips, caps).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	var root []struct{ Plan planNode }
	if err := json.Unmarshal(plan, &root); err != nil {
		t.Fatal(err)
	}
	return root[0].Plan
}

// addsPlan explains the set statement for a batch of n adds under the
// plan cache mode.
func addsPlan(t *testing.T, db *pgxpool.Pool, mode string, n int) planNode {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("'x%d.example'", i)
	}
	return explainPrepared(t, db, mode, fmt.Sprintf("adds_%d", n), store.AddDomainsSQL, fmt.Sprintf(`
		array_fill(sha256('plan-shape-0123456789'::bytea), ARRAY[%[1]d]),
		ARRAY[%[2]s],
		array_fill(443, ARRAY[%[1]d]), array_fill(false, ARRAY[%[1]d]),
		array_fill('192.0.2.1'::inet, ARRAY[%[1]d]), array_fill(1000, ARRAY[%[1]d])`, n, strings.Join(names, ",")))
}

// planNode is one node of EXPLAIN's JSON output.
type planNode struct {
	Type     string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Cond     string     `json:"Index Cond"`
	Filter   string     `json:"Filter"`
	Plans    []planNode `json:"Plans"`
	Loops    int        `json:"Actual Loops"`
}

// loopsOf counts the runs of the plan's nodes that read table (with
// EXPLAIN ANALYZE).
func (n planNode) loopsOf(table string) int {
	count := 0
	if n.Relation == table {
		count += n.Loops
	}
	for _, c := range n.Plans {
		count += c.loopsOf(table)
	}
	return count
}

// scansOf counts the scans of table in the plan that read all of it: a
// sequential scan, or an index scan with no condition.
func (n planNode) scansOf(table string) int {
	count := 0
	if n.Relation == table && (n.Type == "Seq Scan" || n.Cond == "" && n.Filter == "" && strings.Contains(n.Type, "Index")) {
		count++
	}
	for _, c := range n.Plans {
		count += c.scansOf(table)
	}
	return count
}

// logPlan logs a plan, one node a line, for a failing test.
func logPlan(t *testing.T, n planNode, indent string) {
	t.Logf("%s%s %s cond=%q filter=%q", indent, n.Type, n.Relation, n.Cond, n.Filter)
	for _, c := range n.Plans {
		logPlan(t, c, indent+"  ")
	}
}
