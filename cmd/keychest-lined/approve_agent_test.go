// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/keychest/keychest-lined/internal/pgtest"
)

// approve-agent gives an agent to the account its live claim mail went
// to, as the mail's button does (confirming the account); it needs an
// address when mails to several wait, and does nothing for an expired or
// used link. approve --key-prefix does not reach an agent's key.
func TestApproveAgentClaimByOperator(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO accounts (email) VALUES ('new-owner@example.com'), ('other@example.com'), ('late@example.com')`,
		`INSERT INTO agents (agent_id, key_hash, key_prefix, site) VALUES
		 ('agent-a@agents.test', '\x` + strings.Repeat("aa", 32) + `', 'agt-aaaa', 'office'),
		 ('agent-b@agents.test', '\x` + strings.Repeat("bb", 32) + `', 'agt-bbbb', 'lab')`,
		`INSERT INTO tokens (hash, action, account_id, agent_id, expires_at)
		 SELECT sha256(a.email::bytea || g.agent_id::bytea), 'agent_approve', a.id, g.id,
		        now() + CASE WHEN a.email = 'late@example.com' THEN interval '-1 hour' ELSE interval '7 days' END
		 FROM accounts a, agents g WHERE g.agent_id = 'agent-a@agents.test' AND a.email <> 'other@example.com'
		    OR g.agent_id = 'agent-b@agents.test' AND a.email <> 'late@example.com'`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	owner := func(agent string) string {
		var email string
		conn.QueryRow(ctx, `SELECT coalesce(a.email || ' ' || (a.confirmed_at IS NOT NULL)::text, '')
			FROM agents g LEFT JOIN accounts a ON a.id = g.account_id WHERE g.agent_id = $1`, agent).Scan(&email)
		return email
	}
	if code, _, errOut := cli(t, url, "approve", "--key-prefix", "agt-aaaa"); code != 1 || owner("agent-a@agents.test") != "" {
		t.Fatalf("approve --key-prefix on an agent's key: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, url, "approve-agent"); code != 1 || !strings.Contains(errOut, "--agent is required") {
		t.Fatalf("no --agent: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, url, "approve-agent", "--agent", "agent-a@agents.test", "--email", "late@example.com"); code != 1 ||
		!strings.Contains(errOut, "no claim mail waits") || owner("agent-a@agents.test") != "" {
		t.Fatalf("an expired link: %d %q", code, errOut)
	}
	code, out, errOut := cli(t, url, "approve-agent", "--agent", "agent-a@agents.test")
	if code != 0 || !strings.Contains(out, "agent agent-a@agents.test given to new-owner@example.com") ||
		owner("agent-a@agents.test") != "new-owner@example.com true" {
		t.Fatalf("approve-agent: %d %q %q, owner %q", code, out, errOut, owner("agent-a@agents.test"))
	}
	var used int
	conn.QueryRow(ctx, `SELECT count(*) FROM tokens t JOIN agents g ON g.id = t.agent_id
		WHERE g.agent_id = 'agent-a@agents.test' AND t.used_at IS NOT NULL`).Scan(&used)
	if used != 1 {
		t.Errorf("%d links used", used)
	}
	if code, _, errOut := cli(t, url, "approve-agent", "--agent", "agent-a@agents.test"); code != 1 || !strings.Contains(errOut, "no claim mail waits") {
		t.Fatalf("again: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, url, "approve-agent", "--agent", "agent-b@agents.test"); code != 1 ||
		!strings.Contains(errOut, "name one with --email") || owner("agent-b@agents.test") != "" {
		t.Fatalf("two addresses: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, url, "approve-agent", "--agent", "agent-b@agents.test", "--email", "not an address"); code != 1 ||
		!strings.Contains(errOut, "--email") || owner("agent-b@agents.test") != "" {
		t.Fatalf("a bad --email: %d %q", code, errOut)
	}
	// The address as the owner wrote it, in any case.
	if code, out, errOut := cli(t, url, "approve-agent", "--agent", "agent-b@agents.test", "--email", "Other@Example.COM"); code != 0 ||
		owner("agent-b@agents.test") != "other@example.com true" {
		t.Fatalf("with --email: %d %q %q", code, out, errOut)
	}
	var audited int
	conn.QueryRow(ctx, `SELECT count(*) FROM audit WHERE action = 'agent.claim' AND detail->>'by' = 'cli'`).Scan(&audited)
	if audited != 2 {
		t.Errorf("%d approvals audited as the operator's", audited)
	}
}
