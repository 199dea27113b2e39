// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/lineproto"
)

// secondAgent opens and claims another agent of the world's site, with
// the same allow-list, CA and resolver.
func (w *relayWorld) secondAgent(t *testing.T) *agent.Agent {
	t.Helper()
	return w.agentOf(t, "owner-key-0123456789")
}

// agentOf opens another agent of the world's site name (allow-list, CA
// and resolver as the first one's), claimed with the account key key.
func (w *relayWorld) agentOf(t *testing.T, key string) *agent.Agent {
	t.Helper()
	first := w.a.Config()
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	raw, _ := os.ReadFile(filepath.Join(first.Dir, "allow.conf"))
	os.WriteFile(filepath.Join(dir, "allow.conf"), raw, 0o600)
	cfg := first
	cfg.Dir, cfg.Log = dir, ""
	b, err := agent.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	code, _, err := b.ClaimCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := w.line(t, "command claim agent "+code+" apikey "+key); r.Code != lineproto.CodeOK {
		t.Fatalf("claim: %+v", r)
	}
	return b
}

// Two agents of one site, 200 targets: each target is probed exactly once
// a round. Then one agent dies holding jobs (one of them mid-relay): its
// jobs give no verdict, and once they expire the other agent probes them.
func TestTwoAgentsShareASite(t *testing.T) {
	w := newRelayWorld(t, 60*24*time.Hour)
	b := w.secondAgent(t)
	port := strconv.Itoa(w.target.Port())
	const n = 200
	for i := range n {
		name := "t" + strconv.Itoa(i) + ".corp.example"
		w.dns.Set(name, netip.MustParseAddr("127.0.0.50"))
		if r := w.line(t, "command add domain "+name+":"+port+" apikey owner-key-0123456789 site office"); r.Code != lineproto.CodeOK {
			t.Fatalf("add: %+v", r)
		}
	}
	var wg sync.WaitGroup
	for _, a := range []*agent.Agent{w.a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Once(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := w.count(t, `SELECT count(*) FROM agent_targets WHERE checked_at IS NOT NULL AND addresses = 1
		AND (SELECT count(*) FROM agent_jobs j WHERE j.target_id = agent_targets.id) = 1`); got != n {
		t.Fatalf("targets probed exactly once: %d of %d", got, n)
	}
	if got := w.target.Handshakes.Load(); got != n {
		t.Fatalf("handshakes at the target: %d, want %d", got, n)
	}
	t.Logf("round 1: jobs taken by %d agents", w.count(t, `SELECT count(DISTINCT taken_by) FROM agent_jobs`))

	// Round 2: the first agent takes 8 jobs, relays one halfway, and dies.
	w.db.Exec(context.Background(), `UPDATE agent_targets SET next_due = now()`)
	start2 := time.Now()
	id, _ := agent.LoadIdentity(w.a.Config().Dir)
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+agent.PathJobs, strings.NewReader(`{"max":8,"wait_seconds":0}`))
	req.Header.Set("Authorization", "Bearer "+id.APIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var dead agent.JobsReply
	decodeJSON(t, res, &dead)
	if len(dead.Jobs) != 8 {
		t.Fatalf("the dying agent took %d jobs", len(dead.Jobs))
	}
	relay, _ := http.NewRequest(http.MethodPost, w.srv.URL+agent.PathRelay+"?job="+strconv.FormatInt(dead.Jobs[0].ID, 10)+"&address=127.0.0.50", nil)
	relay.Header.Set("Authorization", "Bearer "+id.APIKey)
	relay.Header.Set(agent.HeaderJobToken, dead.Jobs[0].Token)
	relay.Header.Set("Connection", "Upgrade")
	relay.Header.Set("Upgrade", agent.RelayProtocol)
	if res, err := http.DefaultClient.Do(relay); err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("relay: %v %v", res, err)
	} else {
		res.Body.Close() // killed mid-relay: the service's handshake gets EOF
	}
	round2 := time.Now()
	if err := b.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.count(t, `SELECT count(*) FROM agent_targets WHERE checked_at >= $1`, round2); got != n-8 {
		raw, _ := os.ReadFile(filepath.Join(b.Config().Dir, "agent.log"))
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.Contains(l, `"warn"`) || strings.Contains(l, `"error"`) {
				t.Log(l)
			}
		}
		t.Fatalf("checked by the survivor while the dead agent's jobs live: %d, want %d", got, n-8)
	}
	// The dead agent's jobs expire: their targets are due again.
	w.db.Exec(context.Background(), `UPDATE agent_jobs SET expires_at = now() - interval '1 second' WHERE done_at IS NULL`)
	w.db.Exec(context.Background(), `UPDATE agent_targets SET next_due = now() WHERE checked_at < $1`, round2)
	if err := b.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every target has the survivor's verdict (a name mismatch: the server's
	// certificate names ldap.corp.example; the monitor's judge opens its
	// finding on the second probe that sees it), none a verdict of the
	// dead jobs.
	if got := w.count(t, `SELECT count(*) FROM agent_targets WHERE checked_at >= $1
		AND class = 'name_mismatch' AND addresses = 1`, round2); got != n {
		t.Fatalf("checked in round 2: %d of %d", got, n)
	}
	if got := w.count(t, `SELECT count(*) FROM agent_jobs j JOIN agents g ON g.id = j.taken_by
		WHERE g.agent_id = $1 AND j.taken_at >= $2 AND j.done_at IS NOT NULL`, id.ID, start2); got != 0 {
		t.Fatalf("the dead agent's jobs finished: %d", got)
	}
}

// "run" long-polls for jobs once claimed: a target added while it runs is
// probed through it without a restart.
func TestRunProbesNewTargets(t *testing.T) {
	w := newRelayWorld(t, 60*24*time.Hour)
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.a.Run(ctx, nil) }()
	port := strconv.Itoa(w.target.Port())
	if r := w.line(t, "command add domain ldap.corp.example:"+port+" apikey owner-key-0123456789 site office"); r.Code != lineproto.CodeOK {
		t.Fatalf("add: %+v", r)
	}
	deadline := time.Now().Add(20 * time.Second)
	var data string
	for time.Now().Before(deadline) {
		data = w.line(t, "command cert domain ldap.corp.example:"+port+" apikey owner-key-0123456789").Data
		if !strings.Contains(data, " checked=-") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(data, "state=ok ") || !strings.HasSuffix(data, " class=- site=office") {
		t.Fatalf("cert while run runs: %s", data)
	}
}

// KEYCHEST_AGENT_JOB_TTL reaches the jobs (through Deps.AgentLimits), and
// zero settings take the defaults.
func TestAgentJobTTLSetting(t *testing.T) {
	d, def := (AgentLimits{}).orDefaults(), DefaultAgentLimits
	if d.JobTTL != def.JobTTL || d.Heartbeat != def.Heartbeat || d.LogKeep != def.LogKeep || d.AlertBatch != def.AlertBatch ||
		d.Policy.Interval != def.Policy.Interval || d.Policy.WarnMax != def.Policy.WarnMax || d.RegistersPerIPHour != def.RegistersPerIPHour {
		t.Fatalf("zero settings: %+v", d)
	}
	w := newRelayWorld(t, 60*24*time.Hour)
	srv := httptest.NewServer(New(Deps{Tokens: w.st, Agents: w.st, AgentLimits: AgentLimits{JobTTL: 7 * time.Second}, Log: zerolog.Nop()}))
	defer srv.Close()
	if r := w.line(t, "command add domain ldap.corp.example:443 apikey owner-key-0123456789 site office"); r.Code != lineproto.CodeOK {
		t.Fatalf("add: %+v", r)
	}
	id, _ := agent.LoadIdentity(w.a.Config().Dir)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+agent.PathJobs, strings.NewReader(`{"max":1}`))
	req.Header.Set("Authorization", "Bearer "+id.APIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got agent.JobsReply
	decodeJSON(t, res, &got)
	if len(got.Jobs) != 1 {
		t.Fatalf("jobs: %+v", got)
	}
	if left := time.Until(got.Jobs[0].Expires); left < 5*time.Second || left > 8*time.Second {
		t.Fatalf("the job lives %v, want about 7s", left)
	}
}

// check and remove know targets behind a site; a stranger's key does
// neither to the owner's.
func TestCheckAndRemoveSiteTargets(t *testing.T) {
	w := newRelayWorld(t, 60*24*time.Hour)
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	port := strconv.Itoa(w.target.Port())
	domain := "ldap.corp.example:" + port
	w.line(t, "command add domain "+domain+" apikey owner-key-0123456789 site office")
	if err := w.a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"command check domain " + domain + " apikey stranger-key-0123456",
		"command remove domain " + domain + " apikey stranger-key-0123456"} {
		if r := w.line(t, line); r.Code != lineproto.CodeNotFound {
			t.Fatalf("%s: %+v", line, r)
		}
	}
	if r := w.line(t, "command check domain "+domain+" apikey owner-key-0123456789"); r.Code != lineproto.CodeOK || r.Text != "check queued" {
		t.Fatalf("check: %+v", r)
	}
	if err := w.a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := w.count(t, `SELECT count(*) FROM agent_jobs WHERE done_at IS NOT NULL`); n != 2 {
		t.Fatalf("jobs done after a check: %d, want 2", n)
	}
	if r := w.line(t, "command remove domain "+domain+" apikey owner-key-0123456789"); r.Code != lineproto.CodeOK || r.Text != "domain "+domain+" removed" {
		t.Fatalf("remove: %+v", r)
	}
	if r := w.line(t, "command cert domain "+domain+" apikey owner-key-0123456789"); r.Code != lineproto.CodeNotFound {
		t.Fatalf("cert after remove: %+v", r)
	}
}
