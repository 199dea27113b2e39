// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/nsdtest"
	"github.com/keychest/keychest-lined/lineproto"
)

// discoverZone is corp.example with ldap (127.0.0.50, the allow-list's),
// off (127.0.0.51, outside it), and the names of extra.
func discoverZone(extra string) string {
	return "$ORIGIN corp.example.\n$TTL 300\n@ IN SOA ns.corp.example. admin.corp.example. 1 3600 600 86400 300\n" +
		"@ IN NS ns\nns IN A 127.0.0.53\nldap IN A 127.0.0.50\noff IN A 127.0.0.51\n" + extra
}

// openDiscoverAgent opens the agent of DIR with a discover.conf naming
// the NSD at server, and NSD as its resolver too.
func openDiscoverAgent(t *testing.T, s *agentSide, dir, server string, port int, auto bool) *agent.Agent {
	t.Helper()
	conf := fmt.Sprintf("zone corp.example server %s tsig agent-key:hmac-sha256:tsig.secret ports %d\n", server, port)
	if auto {
		conf += "auto_add yes\n"
	}
	os.WriteFile(filepath.Join(dir, agent.DiscoverFile), []byte(conf), 0o600)
	os.Remove(filepath.Join(dir, "discover.stamp")) // due again
	a, err := agent.Open(agent.Config{Dir: dir, Server: s.srv.URL, Version: "1", UID: os.Getuid(), Site: "office",
		SiteCA: filepath.Join(dir, "site-ca.pem"), Resolver: server, For: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// An agent transfers a zone from a real NSD: exactly the allowed name is
// proposed; the owner lists it (a stranger sees nothing and ignores
// nothing), accepts it with "add ... site", and it is then probed through
// the relay. The zone changes: the new name is proposed, the removed one
// marked gone.
func TestDiscoveryProposesAndAcceptsThroughTheRelay(t *testing.T) {
	s := newAgentSide(t)
	now := time.Now()
	ca, _ := certtest.NewCA("Corp Internal CA", now)
	cert, err := ca.Issue(certtest.Lifetime(now, 90*24*time.Hour, 3*24*time.Hour, "ldap.corp.example"))
	if err != nil {
		t.Fatal(err)
	}
	target, err := certtest.Serve("127.0.0.50:0", cert)
	if err != nil {
		t.Fatalf("cannot listen on 127.0.0.50: %v", err)
	}
	t.Cleanup(target.Close)
	port := target.Port()
	p := strconv.Itoa(port)
	server := nsdtest.Start(t, discoverZone("old IN A 127.0.0.50\n"))
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "allow.conf"), []byte("allow 127.0.0.50/32 "+p+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "site-ca.pem"), ca.PEM, 0o600)
	os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte(nsdtest.Secret), 0o600)
	a := openDiscoverAgent(t, s, dir, server, port, false)
	ctx := context.Background()
	if err := a.Once(ctx); err != nil { // registers; not claimed: nothing posted
		t.Fatal(err)
	}
	if n := s.count(t, `SELECT count(*) FROM discovered`); n != 0 {
		t.Fatalf("proposals before the claim: %d", n)
	}
	claimAgent(t, s, a)
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	r := s.line(t, "command discovered apikey owner-key-0123456789")
	items := strings.Split(r.Data, " ; ")
	if r.Code != lineproto.CodeOK || len(items) != 2 || !strings.HasPrefix(items[0], "ldap.corp.example:"+p+" site=office source=axfr:corp.example first_seen=") ||
		!strings.HasSuffix(items[0], " addresses=1") || !strings.HasPrefix(items[1], "old.corp.example:"+p+" ") {
		t.Fatalf("discovered: %+v", r)
	}
	for line, want := range map[string]string{
		"command discovered apikey stranger-key-0123456":                               "-",
		"command ignore domain old.corp.example:" + p + " apikey stranger-key-0123456": "",
	} {
		if r := s.line(t, line); r.Data != want || (want == "" && r.Code != lineproto.CodeNotFound) {
			t.Errorf("%s: %+v", line, r)
		}
	}
	if r := s.line(t, "command add domain ldap.corp.example:"+p+" apikey owner-key-0123456789 site office"); r.Code != lineproto.CodeOK {
		t.Fatalf("accept: %+v", r)
	}
	if err := a.Once(ctx); err != nil { // the job: resolved through NSD, probed through the relay
		t.Fatal(err)
	}
	c := s.line(t, "command cert domain ldap.corp.example:"+p+" apikey owner-key-0123456789")
	if !strings.HasPrefix(c.Data, "state=critical ") || !strings.HasSuffix(c.Data, " class=- site=office") {
		t.Fatalf("cert after the accept: %+v", c)
	}
	// The zone changes: old goes, new comes.
	a.Close()
	a = openDiscoverAgent(t, s, dir, nsdtest.Start(t, discoverZone("new IN A 127.0.0.50\n")), port, false)
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	r = s.line(t, "command discovered apikey owner-key-0123456789")
	items = strings.Split(r.Data, " ; ")
	if len(items) != 2 || !strings.HasPrefix(items[0], "new.corp.example:"+p+" ") || strings.Contains(items[0], "gone=") ||
		!strings.HasPrefix(items[1], "old.corp.example:"+p+" ") || !strings.Contains(items[1], " gone=") {
		t.Fatalf("after the change: %+v", r)
	}
	if r := s.line(t, "command ignore domain old.corp.example:"+p+" apikey owner-key-0123456789"); r.Code != lineproto.CodeOK {
		t.Fatalf("ignore: %+v", r)
	}
	if r := s.line(t, "command discovered apikey owner-key-0123456789"); !strings.HasPrefix(r.Data, "new.corp.example:") || strings.Contains(r.Data, "old.") {
		t.Fatalf("after ignore: %+v", r)
	}
	// auto_add: the proposal becomes a target behind the site directly.
	a.Close()
	a = openDiscoverAgent(t, s, dir, nsdtest.Start(t, discoverZone("new IN A 127.0.0.50\n")), port, true)
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.count(t, `SELECT count(*) FROM agent_targets WHERE name = 'new.corp.example' AND site = 'office'`); n != 1 {
		t.Fatalf("auto_add: %d targets", n)
	}
	if r := s.line(t, "command discovered apikey owner-key-0123456789"); r.Data != "-" {
		t.Fatalf("after auto_add: %+v", r)
	}
}

// A post without a known key, from an agent not claimed, or with a bad
// source, is refused.
func TestDiscoveredPostRefused(t *testing.T) {
	s := newAgentSide(t)
	post := func(path, key, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	var reg agent.Registered
	decodeJSON(t, post(agent.PathRegister, "", `{"host":"gw"}`), &reg)
	good := `{"source":"axfr:corp.example","candidates":[{"name":"a.corp.example","port":443,"addresses":1}]}`
	cases := []struct {
		key, body string
		want      int
	}{
		{"", good, 401},
		{"agt-0123456789abcdef0123", good, 401},
		{"owner-key-0123456789", good, 401}, // an account's key is no agent's key
		{reg.APIKey, good, 403},             // not claimed yet
		{reg.APIKey, `{"source":"zone:corp.example"}`, 400},
		{reg.APIKey, `{"source":"axfr:https://x.example"}`, 400},
		{reg.APIKey, `not json`, 400},
	}
	for _, c := range cases {
		if res := post(agent.PathDiscovered, c.key, c.body); res.StatusCode != c.want {
			t.Errorf("%.12s %s: %d, want %d", c.key, c.body, res.StatusCode, c.want)
		}
	}
	if n := s.count(t, `SELECT count(*) FROM discovered`); n != 0 {
		t.Errorf("%d proposals stored", n)
	}
}

// A transfer NSD refuses (a wrong TSIG secret) proposes nothing; the agent
// carries on, and "agents" shows the failing source from its next
// heartbeat. A summary whose count is no number reads as none.
func TestDiscoveryRefusalShownOnAgents(t *testing.T) {
	s := newAgentSide(t)
	server := nsdtest.Start(t, discoverZone(""))
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "allow.conf"), []byte("allow 127.0.0.50/32 443\n"), 0o600)
	ca, _ := certtest.NewCA("Corp Internal CA", time.Now())
	os.WriteFile(filepath.Join(dir, "site-ca.pem"), ca.PEM, 0o600)
	os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte("d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0wMTI="), 0o600)
	a := openDiscoverAgent(t, s, dir, server, 443, false)
	ctx := context.Background()
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	claimAgent(t, s, a)
	for range 2 { // the pass, then the heartbeat that reports it
		os.Remove(filepath.Join(dir, "discover.stamp"))
		if err := a.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.count(t, `SELECT count(*) FROM discovered`); n != 0 {
		t.Fatalf("%d proposals from a refused transfer", n)
	}
	if n := s.count(t, `SELECT count(*) FROM agent_logs WHERE code = $1`, logcode.AgentTransferRefused); n < 1 {
		t.Fatalf("no %s posted", logcode.AgentTransferRefused)
	}
	if r := s.line(t, "command agents apikey owner-key-0123456789"); !strings.HasSuffix(r.Data, " state=ok discovery_failing=1") {
		t.Fatalf("agents: %+v", r)
	}
	s.db.Exec(ctx, `UPDATE agents SET summary = jsonb_set(summary, '{discovery_failed}', '"many"')`)
	if r := s.line(t, "command agents apikey owner-key-0123456789"); !strings.HasSuffix(r.Data, " state=ok") {
		t.Fatalf("agents with a bad count: %+v", r)
	}
}
