// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/handlers"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// agentSide is keychest-lined's web listener and line commands on a
// fresh database, with two confirmed accounts' keys.
type agentSide struct {
	st  *store.Postgres
	srv *httptest.Server
	mux *handlers.Mux
	db  *pgx.Conn
}

func newAgentSide(t testing.TB) *agentSide {
	t.Helper()
	return newAgentSideWith(t, AgentLimits{})
}

// newAgentSideWith is newAgentSide with the agent API's settings limits.
func newAgentSideWith(t testing.TB, limits AgentLimits) *agentSide {
	t.Helper()
	url := pgtest.NewDatabase(t)
	st, err := store.Open(context.Background(), url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	confirmedKey(t, st, url, "owner-key-0123456789", "owner@example.com")
	confirmedKey(t, st, url, "stranger-key-0123456", "stranger@example.com")
	srv := httptest.NewServer(New(Deps{Tokens: st, Accounts: st, ACME: st, Agents: st, AgentLimits: limits, Log: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	db, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	return &agentSide{st: st, srv: srv, mux: handlers.NewMux(st, handlers.Config{Version: "test"}, zerolog.Nop(), handlers.WithAgents(st), handlers.WithSiteTargets(st), handlers.WithDiscovery(st)), db: db}
}

// line sends one line command.
func (s *agentSide) line(t testing.TB, text string) lineproto.Reply {
	t.Helper()
	req, perr := lineproto.ParseLine([]byte(text))
	if perr != nil {
		t.Fatal(perr)
	}
	req.Remote = netip.MustParseAddr("127.0.0.1")
	return s.mux.Serve(context.Background(), &req)
}

func (s *agentSide) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A real agent registers, waits, is claimed by code with a line command,
// then posts its logs; the owner lists it, a stranger does not see it.
func TestAgentRegistersAndIsClaimedByCode(t *testing.T) {
	s := newAgentSide(t)
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "allow.conf"), []byte("allow 127.0.0.50/32 8443\n"), 0o600)
	a, err := agent.Open(agent.Config{Dir: dir, Server: s.srv.URL, Version: "9.9", UID: os.Getuid(), Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx := context.Background()
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.count(t, `SELECT count(*) FROM agents WHERE account_id IS NULL AND site = 'lab' AND version = '9.9'
		AND summary->'allow'->>0 = 'allow 127.0.0.50/32 8443'`); n != 1 {
		t.Fatalf("registered agents: %d", n)
	}
	if n := s.count(t, `SELECT count(*) FROM agent_logs`); n != 0 {
		t.Fatalf("logs before the claim: %d", n)
	}
	code, _, err := a.ClaimCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.line(t, "command claim agent "+code+" apikey stranger-key-0123456x"); r.Code == lineproto.CodeOK {
		t.Fatalf("an unknown key claimed: %+v", r)
	}
	if r := s.line(t, "command claim agent "+code+" apikey owner-key-0123456789"); r.Code != lineproto.CodeOK {
		t.Fatalf("claim: %+v", r)
	}
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.count(t, `SELECT count(*) FROM agent_logs WHERE code = $1`, logcode.AgentRegistered); n != 1 {
		t.Fatalf("posted %s entries: %d", logcode.AgentRegistered, n)
	}
	id, _ := agent.LoadIdentity(dir)
	if !id.Claimed || id.Site != "lab" || !strings.HasPrefix(id.ID, "agent-") || !strings.HasSuffix(id.ID, "@agents.keychest.invalid") {
		t.Fatalf("identity: %+v", id)
	}
	host, _ := os.Hostname()
	r := s.line(t, "command agents apikey owner-key-0123456789")
	if !strings.HasPrefix(r.Data, "id="+id.ID+" site=lab host="+strings.ToLower(host)+" version=9.9 claimed=yes ") ||
		!strings.HasSuffix(r.Data, " state=ok") {
		t.Fatalf("agents: %+v", r)
	}
	if r := s.line(t, "command agents apikey stranger-key-0123456"); r.Data != "-" {
		t.Fatalf("the stranger's agents: %+v", r)
	}
	// A claimed agent gets no new claim code.
	var se *agent.StatusError
	if _, _, err := a.ClaimCode(ctx); !errors.As(err, &se) || se.Code != http.StatusConflict {
		t.Fatalf("claim code once claimed: %v", err)
	}
}

func TestAgentAPIRefuses(t *testing.T) {
	s := newAgentSide(t)
	post := func(path, key, body string) int {
		req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	cases := []struct {
		path, key, body string
		want            int
	}{
		{agent.PathHeartbeat, "", `{}`, 401},
		{agent.PathHeartbeat, "agt-not-a-known-key-0000", `{}`, 401},
		{agent.PathHeartbeat, "owner-key-0123456789", `{}`, 401}, // an account's key is no agent's key
		{agent.PathLogs, "agt-not-a-known-key-0000", `{"code":"` + logcode.AgentStarted + `"}`, 401},
		{agent.PathClaimCode, "agt-not-a-known-key-0000", `{"code":"7K3QX-M9P2A"}`, 401},
		{agent.PathRegister, "", `not json`, 400},
		{agent.PathRegister, "", `{"host":"h","allow":["` + strings.Repeat("x", 300<<10) + `"]}`, 400},
		{agent.PathRegister, "", `{"host":"h","site_cas":["not pem"]}`, 400},
	}
	for _, c := range cases {
		if got := post(c.path, c.key, c.body); got != c.want {
			t.Errorf("%s %s %.40s: %d, want %d", c.path, c.key, c.body, got, c.want)
		}
	}
	if n := s.count(t, `SELECT count(*) FROM agents`); n != 0 {
		t.Fatalf("agents stored: %d", n)
	}
	// Registered but not claimed: a bad claim code is 400, logs are 403.
	var reg agent.Registered
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+agent.PathRegister, strings.NewReader(`{"host":"gw"}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("register: %v %v", res, err)
	}
	decodeJSON(t, res, &reg)
	if got := post(agent.PathClaimCode, reg.APIKey, `{"code":"nope"}`); got != 400 {
		t.Errorf("bad claim code: %d", got)
	}
	if got := post(agent.PathLogs, reg.APIKey, `{"code":"`+logcode.AgentStarted+`"}`); got != 403 {
		t.Errorf("logs before a claim: %d", got)
	}
	if got := post(agent.PathHeartbeat, reg.APIKey, `{"host":"gw"}`); got != 200 {
		t.Errorf("heartbeat: %d", got)
	}
	if n := s.count(t, `SELECT count(*) FROM agents WHERE site = 'gw' AND key_prefix = $1`, reg.APIKey[:8]); n != 1 {
		t.Errorf("the agent's site defaults to its host name: %d", n)
	}
}

func TestSiteAndIDWords(t *testing.T) {
	for _, c := range []struct {
		in   agent.Summary
		want string
	}{
		{agent.Summary{Site: "Office-2"}, "office-2"},
		{agent.Summary{Host: "gw1.corp.example"}, "gw1"},
		{agent.Summary{Site: "bad site", Host: "gw"}, "gw"},
		{agent.Summary{Host: "-x"}, "default"},
		{agent.Summary{Site: strings.Repeat("a", 64)}, "default"},
	} {
		if got := siteOf(c.in); got != c.want {
			t.Errorf("siteOf(%+v) = %q, want %q", c.in, got, c.want)
		}
	}
	for host, want := range map[string]string{"keychest.example:8443": "@agents.keychest.example",
		"127.0.0.1:80": "@agents.keychest.invalid", "[::1]:80": "@agents.keychest.invalid", "bad host": "@agents.keychest.invalid"} {
		if id := newAgentID(host); !strings.HasSuffix(id, want) || len(id) != len("agent-")+12+len(want) {
			t.Errorf("newAgentID(%q) = %q", host, id)
		}
	}
}

func decodeJSON(t *testing.T, res *http.Response, v any) {
	t.Helper()
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
