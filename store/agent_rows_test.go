// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A target behind a site and an agent's own row are never leased by the
// central monitor, even due, nor do they clash with a public target of
// the same name and port; the agents' rows are leased for their silence
// only once it changed.
func TestCentralLeaseSkipsSiteAndAgentRows(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	k := ref("site-key-0123456789")
	for _, sql := range []string{
		`INSERT INTO accounts (email, confirmed_at) VALUES ('o@example.com', now())`,
		`INSERT INTO api_keys (key_hash, key_prefix, origin, account_id) SELECT '\x` + hexOf(k.Hash[:]) + `', 'site-key', 'server', id FROM accounts`,
		`INSERT INTO agents (agent_id, key_hash, key_prefix, site, account_id, claimed_at, last_seen_at)
		 SELECT 'agent-a@agents.test', '\x` + strings.Repeat("aa", 32) + `', 'agt-aaaa', 'office', id, now(), now() - interval '1 hour' FROM accounts`,
		`INSERT INTO agent_targets (account_id, api_key_id, site, name, port) SELECT account_id, id, 'office', 'ldap.corp.example', 636 FROM api_keys`,
		`INSERT INTO mon_targets (name, port, site_target, next_due) SELECT name, port, id, now() - interval '1 day' FROM agent_targets`,
		`INSERT INTO mon_targets (name, port, next_due) VALUES ('ldap.corp.example', 636, now() + interval '1 day')`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	now := time.Now()
	got, err := p.Lease(ctx, "central", now, now.Add(time.Minute), 100)
	if err != nil || len(got) != 0 {
		t.Fatalf("the central monitor leased %+v (%v)", got, err)
	}
	var active bool
	if err := conn.QueryRow(ctx, `SELECT active FROM mon_targets WHERE site_target IS NOT NULL`).Scan(&active); err != nil || !active {
		t.Fatalf("the central monitor's lease marked the site's row inactive (%v)", err)
	}
	ws, err := p.LeaseAgents(ctx, "m", now, now.Add(time.Minute), 15*time.Minute, 10)
	if err != nil || len(ws) != 1 || ws[0].Target.Name != "agent-a@agents.test" || ws[0].Target.Port != 0 {
		t.Fatalf("silent agent: %+v %v", ws, err)
	}
	if got, err := p.Lease(ctx, "central", now, now.Add(time.Minute), 100); err != nil || len(got) != 0 {
		t.Fatalf("the central monitor leased an agent's row: %+v (%v)", got, err)
	}
	p.Release(ctx, "m", []int64{ws[0].Target.ID})
	if _, err := conn.Exec(ctx, `UPDATE agents SET last_seen_at = now()`); err != nil {
		t.Fatal(err)
	}
	if ws, err := p.LeaseAgents(ctx, "m", now, now.Add(time.Minute), 15*time.Minute, 10); err != nil || len(ws) != 0 {
		t.Fatalf("an agent heard from, with nothing open, was leased: %+v %v", ws, err)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}
