// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"strings"
	"testing"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/pgtest"
)

func TestAgentsAndAgentLogs(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO accounts (email, confirmed_at) VALUES ('owner@example.com', now())`,
		`INSERT INTO agents (agent_id, key_hash, key_prefix, site, host, version, account_id, claimed_at)
		 VALUES ('agent-a@agents.test', '\x` + strings.Repeat("aa", 32) + `', 'agt-aaaa', 'office', 'gw.corp', '1.2',
		         (SELECT id FROM accounts), now())`,
		`INSERT INTO agents (agent_id, key_hash, key_prefix, site, host, last_seen_at)
		 VALUES ('agent-b@agents.test', '\x` + strings.Repeat("bb", 32) + `', 'agt-bbbb', 'lab', 'lab1', now() - interval '1 hour')`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for i, msg := range []string{"started", "refused"} {
		code := []string{logcode.AgentStarted, logcode.AgentDialRefused}[i]
		if _, err := conn.Exec(ctx, `INSERT INTO agent_logs (agent_id, event_time, code, level, entry)
			SELECT id, now(), $1, 'info', jsonb_build_object('code', $1::text, 'message', $2::text) FROM agents WHERE agent_id = 'agent-a@agents.test'`,
			code, msg); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := cli(t, url, "agents")
	if code != 0 || !strings.Contains(out, "agent-a@agents.test") || !strings.Contains(out, "owner@example.com") ||
		!strings.Contains(out, "office") || !strings.Contains(out, " ok") || !strings.Contains(out, " silent") {
		t.Fatalf("agents: %d %q %q", code, out, errOut)
	}
	code, out, _ = cli(t, url, "agent-logs", "--agent", "agent-a@agents.test")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[1], logcode.AgentStarted) || !strings.Contains(lines[2], "refused") {
		t.Fatalf("agent-logs: %d %q", code, out)
	}
	code, out, _ = cli(t, url, "agent-logs", "--agent", "agent-a@agents.test", "--json")
	if seen, err := logcode.CheckEntries([]byte(out)); code != 0 || seen[logcode.AgentDialRefused] != 1 || err == nil {
		// CheckEntries wants event_time in each entry: these test entries have none, so it must complain.
		t.Fatalf("agent-logs --json: %d %q %v", code, out, seen)
	}
	if code, _, errOut := cli(t, url, "agent-logs", "--agent", "nobody@agents.test"); code != 1 || !strings.Contains(errOut, "no agent nobody@agents.test") {
		t.Fatalf("unknown agent: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, url, "agent-logs"); code != 1 || !strings.Contains(errOut, "--agent is required") {
		t.Fatalf("no --agent: %d %q", code, errOut)
	}
}
