// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/lineproto"
)

// relayWorld is a claimed agent whose allow-list is 127.0.0.50/32 on the
// port of a TLS server there (a certificate of an internal CA the agent
// pushes for its site), and whose resolver is a DNS server on loopback.
type relayWorld struct {
	*agentSide
	a       *agent.Agent
	target  *certtest.Server
	dns     *certtest.DNS
	account int64
}

func newRelayWorld(t testing.TB, left time.Duration) *relayWorld {
	t.Helper()
	return newRelayWorldWith(t, left, worldOptions{})
}

// worldOptions change newRelayWorld's: the certificate's names (default
// ldap.corp.example), its CA (default a new one), the agent API's settings.
type worldOptions struct {
	names  []string
	ca     *certtest.CA
	limits AgentLimits
}

// newRelayWorldWith is newRelayWorld with options.
func newRelayWorldWith(t testing.TB, left time.Duration, o worldOptions) *relayWorld {
	t.Helper()
	s := newAgentSideWith(t, o.limits)
	now := time.Now()
	if len(o.names) == 0 {
		o.names = []string{"ldap.corp.example"}
	}
	ca, err := o.ca, error(nil)
	if ca == nil {
		if ca, err = certtest.NewCA("Corp Internal CA", now); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := ca.Issue(certtest.Lifetime(now, 90*24*time.Hour, left, o.names...))
	if err != nil {
		t.Fatal(err)
	}
	target, err := certtest.Serve("127.0.0.50:0", cert)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.50: %v", err)
	}
	t.Cleanup(target.Close)
	dns, err := certtest.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "allow.conf"), []byte("allow 127.0.0.50/32 "+strconv.Itoa(target.Port())+"\n"), 0o600)
	caFile := filepath.Join(dir, "site-ca.pem")
	os.WriteFile(caFile, ca.PEM, 0o600)
	a, err := agent.Open(agent.Config{Dir: dir, Server: s.srv.URL, Version: "1", UID: os.Getuid(), Site: "office",
		SiteCA: caFile, Resolver: dns.Addr(), For: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	code, _, err := a.ClaimCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.line(t, "command claim agent "+code+" apikey owner-key-0123456789"); r.Code != lineproto.CodeOK {
		t.Fatalf("claim: %+v", r)
	}
	w := &relayWorld{agentSide: s, a: a, target: target, dns: dns}
	if err := s.db.QueryRow(ctx, `SELECT id FROM accounts WHERE email = 'owner@example.com'`).Scan(&w.account); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *relayWorld) queue(t testing.TB, name string, port int) int64 {
	t.Helper()
	id, err := w.st.QueueAgentJob(context.Background(), w.account, "office", name, port, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The monitor's probe code makes the TLS handshake through the agent's
// relay: the central side never dials the private address, and trusts
// the site's internal CA. A name off the allow-list is refused with no
// connection made to it.
func TestRelayedProbeAndRefusal(t *testing.T) {
	w := newRelayWorld(t, 20*24*time.Hour)
	off, err := net.Listen("tcp", "127.0.0.51:"+strconv.Itoa(w.target.Port()))
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.51: %v", err)
	}
	defer off.Close()
	offAccepts := make(chan struct{}, 10)
	go func() {
		for {
			c, err := off.Accept()
			if err != nil {
				return
			}
			offAccepts <- struct{}{}
			c.Close()
		}
	}()
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	w.dns.Set("blocked.corp.example", netip.MustParseAddr("127.0.0.51"))
	okJob := w.queue(t, "ldap.corp.example", w.target.Port())
	refusedJob := w.queue(t, "blocked.corp.example", w.target.Port())
	if err := w.a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	var result []byte
	var outcome string
	if err := w.db.QueryRow(context.Background(), `SELECT r.result, j.outcome FROM agent_job_relays r
		JOIN agent_jobs j ON j.id = r.job_id WHERE j.id = $1 AND r.address = '127.0.0.50'`, okJob).Scan(&result, &outcome); err != nil {
		t.Fatal(err)
	}
	var probe relayProbe
	json.Unmarshal(result, &probe)
	a, parsed := probe.addressResult()
	if outcome != agent.OutcomeOK || probe.Class != "ok" || !parsed || len(a.Chain) == 0 ||
		time.Until(a.Chain[0].NotAfter) < 19*24*time.Hour || a.Chain[0].Issuer.CommonName != "Corp Internal CA" {
		t.Fatalf("relayed probe: outcome %s, %s", outcome, result)
	}
	if w.target.Handshakes.Load() != 1 {
		t.Fatalf("handshakes at the target: %d", w.target.Handshakes.Load())
	}
	if n := w.count(t, `SELECT count(*) FROM agent_jobs WHERE id = $1 AND outcome = 'refused'
		AND result->0->>'outcome' = 'refused' AND result->0->>'address' = '127.0.0.51'`, refusedJob); n != 1 {
		t.Fatalf("refused job not recorded as refused")
	}
	if n := w.count(t, `SELECT count(*) FROM agent_job_relays WHERE job_id = $1`, refusedJob); n != 0 {
		t.Fatalf("a relay was opened for the refused job")
	}
	if len(offAccepts) != 0 {
		t.Fatalf("the listener off the allow-list accepted %d connections", len(offAccepts))
	}
}

// Without the site's CA pushed, the same certificate is untrusted: the
// internal CA is trusted for that site's relays only, never centrally.
func TestRelayedProbeUntrustedWithoutSiteCA(t *testing.T) {
	w := newRelayWorld(t, 20*24*time.Hour)
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	w.db.Exec(context.Background(), `UPDATE agents SET summary = summary - 'site_cas'`)
	// The agent pushes its summary again on its next contact: stop that by
	// taking the job with the HTTP API through the agent's own calls.
	job := w.queue(t, "ldap.corp.example", w.target.Port())
	jobs, err := w.a.TakeJobs(context.Background(), 0)
	if err != nil || len(jobs) != 1 || jobs[0].ID != job {
		t.Fatalf("take: %+v %v", jobs, err)
	}
	w.a.RunJobs(context.Background(), jobs)
	var class string
	if err := w.db.QueryRow(context.Background(), `SELECT result->>'class' FROM agent_job_relays WHERE job_id = $1`, job).Scan(&class); err != nil {
		t.Fatal(err)
	}
	if class != "untrusted" {
		t.Fatalf("class %q, want untrusted", class)
	}
}

// A job replayed, forged or taken with another agent's key is refused
// with 403 over HTTP, and no relay is opened for it.
func TestRelayReplayRefused(t *testing.T) {
	w := newRelayWorld(t, 20*24*time.Hour)
	id, err := agent.LoadIdentity(w.a.Config().Dir)
	if err != nil {
		t.Fatal(err)
	}
	job := w.queue(t, "ldap.corp.example", w.target.Port())
	post := func(path, key, token, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, w.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		if token != "" {
			req.Header.Set(agent.HeaderJobToken, token)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", agent.RelayProtocol)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := post(agent.PathJobs, id.APIKey, "", `{"max":4,"wait_seconds":0}`)
	var got agent.JobsReply
	decodeJSON(t, res, &got)
	if len(got.Jobs) != 1 || got.Jobs[0].ID != job {
		t.Fatalf("jobs: %+v", got)
	}
	tok := got.Jobs[0].Token
	relay := agent.PathRelay + "?job=" + strconv.FormatInt(job, 10) + "&address=127.0.0.50"
	first := post(relay, id.APIKey, tok, "")
	if first.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("relay: %d", first.StatusCode)
	}
	first.Body.Close()
	for what, r := range map[string]*http.Response{
		"replayed":     post(relay, id.APIKey, tok, ""),
		"forged token": post(agent.PathRelay+"?job="+strconv.FormatInt(job, 10)+"&address=127.0.0.9", id.APIKey, strings.Repeat("0", 64), ""),
		"another job":  post(agent.PathRelay+"?job="+strconv.FormatInt(job+1, 10)+"&address=127.0.0.9", id.APIKey, tok, ""),
	} {
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d", what, r.StatusCode)
		}
		r.Body.Close()
	}
	result := `{"id":` + strconv.FormatInt(job, 10) + `,"token":"` + tok + `","outcome":"ok","addresses":[]}`
	if r := post(agent.PathJobResult, id.APIKey, "", result); r.StatusCode != 200 {
		t.Fatalf("result: %d", r.StatusCode)
	}
	if r := post(agent.PathJobResult, id.APIKey, "", result); r.StatusCode != http.StatusForbidden {
		t.Fatalf("result twice: %d", r.StatusCode)
	}
	if n := w.count(t, `SELECT count(*) FROM agent_job_relays WHERE job_id = $1`, job); n != 1 {
		t.Fatalf("relays opened: %d", n)
	}
}

// The owner puts names behind the site with line commands; the agent's
// pass probes them through its relays; "cert" shows state, days, class
// and site=S. Nothing of it reaches the central monitor's targets (their
// own rows in mon_targets are not public: the central monitor never
// leases them).
func TestSiteTargetsThroughTheLineProtocol(t *testing.T) {
	w := newRelayWorld(t, 3*24*time.Hour) // 3 days left of 90: critical
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	w.dns.Set("blocked.corp.example", netip.MustParseAddr("127.0.0.51"))
	port := strconv.Itoa(w.target.Port())
	for line, want := range map[string]int{
		"command add domain ldap.corp.example:" + port + " apikey owner-key-0123456789 site office":    lineproto.CodeOK,
		"command add domain blocked.corp.example:" + port + " apikey owner-key-0123456789 site office": lineproto.CodeOK,
		"command add domain x.corp.example:" + port + " apikey owner-key-0123456789 site nowhere":      lineproto.CodeNotFound,
		"command add domain x.corp.example:" + port + " apikey stranger-key-0123456 site office":       lineproto.CodeNotFound,
		"command add domain *.corp.example:" + port + " apikey owner-key-0123456789 site office":       lineproto.CodeBadRequest,
		"command add domain x.corp.example:" + port + " apikey owner-key-0123456789 site Bad!":         lineproto.CodeBadRequest,
	} {
		if r := w.line(t, line); r.Code != want {
			t.Errorf("%s: %+v, want %d", line, r, want)
		}
	}
	cert := func(name string) string {
		r := w.line(t, "command cert domain "+name+":"+port+" apikey owner-key-0123456789")
		if r.Code != lineproto.CodeOK {
			t.Fatalf("cert %s: %+v", name, r)
		}
		return r.Data
	}
	if got := cert("ldap.corp.example"); !strings.HasPrefix(got, "state=unknown ") || !strings.HasSuffix(got, " site=office") {
		t.Fatalf("before a probe: %s", got)
	}
	if err := w.a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := cert("ldap.corp.example"); !strings.HasPrefix(got, "state=critical ") || !strings.Contains(got, " days=2 ") ||
		!strings.Contains(got, " issuer=Corp_Internal_CA addresses=1 ") || !strings.HasSuffix(got, " class=- site=office") {
		t.Fatalf("relayed: %s", got)
	}
	if got := cert("blocked.corp.example"); !strings.HasPrefix(got, "state=unknown ") || !strings.HasSuffix(got, " class=agent_refused site=office") {
		t.Fatalf("refused: %s", got)
	}
	// A second pass right away queues nothing: each target once per round.
	if err := w.a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := w.count(t, `SELECT count(*) FROM agent_jobs`); n != 2 {
		t.Fatalf("jobs after two passes: %d", n)
	}
	if n := w.count(t, `SELECT (SELECT count(*) FROM domains) + (SELECT count(*) FROM mon_targets WHERE public)`); n != 0 {
		t.Fatalf("site targets reached the central monitor's tables: %d rows", n)
	}
	// The site's agent silent: agent_unavailable, not a certificate finding.
	w.db.Exec(context.Background(), `UPDATE agents SET last_seen_at = now() - interval '1 hour'`)
	if got := cert("ldap.corp.example"); !strings.HasPrefix(got, "state=unknown ") || !strings.HasSuffix(got, " class=agent_unavailable site=office") {
		t.Fatalf("silent site: %s", got)
	}
	// A stranger's key does not see the owner's site targets.
	if r := w.line(t, "command cert domain ldap.corp.example:"+port+" apikey stranger-key-0123456"); r.Code != lineproto.CodeNotFound {
		t.Fatalf("the stranger's cert: %+v", r)
	}
}
