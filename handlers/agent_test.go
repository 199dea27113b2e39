// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"regexp"
	"strings"
	"testing"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/lineproto"
)

// agentEnv has a confirmed owner, a confirmed stranger, an unconfirmed
// key, and one unclaimed agent whose claim code is 7K3QX-M9P2A.
func agentEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, 100)
	for _, line := range []string{
		"command claim apikey owner-key-0123456789 email owner@example.com",
		"command claim apikey stranger-key-0123456 email stranger@example.com",
		"command claim apikey pending-key-01234567 email pending@example.com",
	} {
		if r := e.do(t, line); r.Code != lineproto.CodeOK {
			t.Fatalf("%s: %+v", line, r)
		}
	}
	hash, _ := agent.ClaimCodeHash("7K3QX-M9P2A")
	for _, sql := range []string{
		`UPDATE accounts SET confirmed_at = now() WHERE email <> 'pending@example.com'`,
		`UPDATE api_keys SET pending_at = NULL WHERE key_prefix <> 'pending-'`,
		`INSERT INTO agents (agent_id, key_hash, key_prefix, site, host, version)
		 VALUES ('agent-x@agents.test', '\x` + strings.Repeat("ab", 32) + `', 'agt-abcd', 'office', 'gw.corp.example', '1.0')`,
	} {
		if _, err := e.db.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, err := e.db.Exec(t.Context(), `INSERT INTO agent_claim_codes (agent_id, code_hash, expires_at)
		SELECT id, $1, now() + interval '1 hour' FROM agents`, hash[:]); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestClaimAgentCommand(t *testing.T) {
	e := agentEnv(t)
	cases := []struct {
		line string
		code int
	}{
		{"command claim agent 7K3QX-M9P2A", lineproto.CodeBadRequest},                                                 // no key
		{"command claim agent not-a-code apikey owner-key-0123456789", lineproto.CodeBadRequest},                      // malformed code
		{"command claim agent 7K3QX-M9P2A apikey owner-key-0123456789 email a@example.com", lineproto.CodeBadRequest}, // both
		{"command claim agent 7K3QX-M9P2A apikey pending-key-01234567", lineproto.CodeForbidden},                      // unconfirmed account
		{"command claim agent 7K3QX-M9P2A apikey nobody-key-012345678", lineproto.CodeUnknownKey},
		{"command claim agent 7K3QX-M9P2B apikey stranger-key-0123456", lineproto.CodeNotFound}, // wrong code
	}
	for _, c := range cases {
		if r := e.do(t, c.line); r.Code != c.code {
			t.Errorf("%s: %d %s, want %d", c.line, r.Code, r.Text, c.code)
		}
	}
	// Typed as a person may: lower case, O for 0 is not needed here.
	r := e.do(t, "command claim agent 7k3qxm9p2a apikey owner-key-0123456789")
	if r.Code != lineproto.CodeOK || !strings.Contains(r.Text, "agent agent-x@agents.test claimed for site office") ||
		!strings.Contains(r.Data, "claimed=yes") {
		t.Fatalf("claim: %+v", r)
	}
	if r := e.do(t, "command claim agent 7K3QX-M9P2A apikey stranger-key-0123456"); r.Code != lineproto.CodeNotFound {
		t.Fatalf("the used code, by the stranger: %+v", r)
	}
	if n := e.count(t, `SELECT count(*) FROM agents g JOIN accounts a ON a.id = g.account_id WHERE a.email = 'owner@example.com'`); n != 1 {
		t.Fatalf("the owner's agents: %d", n)
	}
	if n := e.count(t, `SELECT count(*) FROM audit WHERE action = 'agent.claim' AND key_prefix = 'owner-ke'`); n != 1 {
		t.Fatalf("audit rows: %d", n)
	}
}

func TestAgentsCommand(t *testing.T) {
	e := agentEnv(t)
	if r := e.do(t, "command agents apikey owner-key-0123456789"); r.Code != lineproto.CodeOK || r.Data != "-" || r.Text != "0 agents" {
		t.Fatalf("before the claim: %+v", r)
	}
	e.do(t, "command claim agent 7K3QX-M9P2A apikey owner-key-0123456789")
	line := regexp.MustCompile(`^id=agent-x@agents\.test site=office host=gw\.corp\.example version=1\.0 claimed=yes ` +
		`last_seen=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ state=(ok|silent|refusing)$`)
	state := func() string {
		r := e.do(t, "command agents apikey owner-key-0123456789")
		if r.Code != lineproto.CodeOK || !line.MatchString(r.Data) || r.Text != "1 agent" {
			t.Fatalf("agents: %+v", r)
		}
		return line.FindStringSubmatch(r.Data)[1]
	}
	if s := state(); s != "ok" {
		t.Fatalf("state %s", s)
	}
	e.db.Exec(t.Context(), `UPDATE agents SET refusing = true`)
	if s := state(); s != "refusing" {
		t.Fatalf("state %s", s)
	}
	e.db.Exec(t.Context(), `UPDATE agents SET last_seen_at = now() - interval '16 minutes'`)
	if s := state(); s != "silent" {
		t.Fatalf("state %s", s)
	}
	// Nobody else sees it.
	if r := e.do(t, "command agents apikey stranger-key-0123456"); r.Code != lineproto.CodeOK || r.Data != "-" {
		t.Fatalf("the stranger's list: %+v", r)
	}
	if r := e.do(t, "command agents apikey pending-key-01234567"); r.Code != lineproto.CodeForbidden {
		t.Fatalf("an unconfirmed key's list: %+v", r)
	}
}

// An agent's text cannot add a field or a line to the reply.
func TestAgentLineKeepsFields(t *testing.T) {
	e := agentEnv(t)
	e.db.Exec(t.Context(), `UPDATE agents SET host = 'gw state=ok x', version = E'1\n2'`)
	e.do(t, "command claim agent 7K3QX-M9P2A apikey owner-key-0123456789")
	r := e.do(t, "command agents apikey owner-key-0123456789")
	if !strings.Contains(r.Data, "host=gw_state_ok_x version=1_2 ") || strings.Count(r.Data, "state=") != 1 {
		t.Fatalf("data: %q", r.Data)
	}
}
