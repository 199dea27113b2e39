// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/slapdtest"
	"github.com/keychest/keychest-lined/lineproto"
)

// claimedAgentKey registers an agent of site office with the service and
// has the owner claim it; it returns the agent's key.
func claimedAgentKey(tb testing.TB, s *agentSide) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	a, err := agent.Open(agent.Config{Dir: dir, Server: s.srv.URL, Version: "1", UID: os.Getuid(), Site: "office"})
	if err != nil {
		tb.Fatal(err)
	}
	defer a.Close()
	if err := a.Once(context.Background()); err != nil {
		tb.Fatal(err)
	}
	claimAgent(tb, s, a)
	id, err := agent.LoadIdentity(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return id.APIKey
}

// claimAgent has the owner claim a, registered already, with a claim
// code a made.
func claimAgent(tb testing.TB, s *agentSide, a *agent.Agent) {
	tb.Helper()
	code, _, err := a.ClaimCode(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if r := s.line(tb, "command claim agent "+code+" apikey owner-key-0123456789"); r.Code != lineproto.CodeOK {
		tb.Fatalf("claim: %+v", r)
	}
}

// timedPost posts body to path as the agent key and reports, under
// name, the seconds it took and the MiB the process allocated meanwhile
// (the service's decoding, checks and storing; the client only sends the
// bytes). The answer must be 200.
func timedPost(b *testing.B, s *agentSide, key, path string, body []byte, name string) {
	b.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	req, _ := http.NewRequest(http.MethodPost, s.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if res.StatusCode != http.StatusOK {
		b.Fatalf("%s: %s", name, res.Status)
	}
	b.ReportMetric(took.Seconds(), "s/"+name)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), "MiB-alloc/"+name)
}

// benchPosts posts post to path as a claimed agent of a fresh service,
// twice a pass (new, then seen), emptying table before each pass; then
// table must hold want rows not gone.
func benchPosts(b *testing.B, path string, post any, table string, want int) {
	s := newAgentSide(b)
	key := claimedAgentKey(b, s)
	body, _ := json.Marshal(post)
	for b.Loop() {
		b.ReportMetric(float64(len(body))/(1<<20), "MiB-body")
		s.db.Exec(context.Background(), `DELETE FROM `+table)
		timedPost(b, s, key, path, body, "new")
		timedPost(b, s, key, path, body, "seen")
	}
	if n := s.count(b, `SELECT count(*) FROM `+table+` WHERE gone_at IS NULL`); n != want {
		b.Fatalf("%d rows in %s, want %d", n, table, want)
	}
}

// The service storing one LDAP source's 10,000 certificates (and a
// CA's): the first post (all new), then the same again (all seen). Go
// test -run '^$' -bench StoreLDAPPost10k -benchtime 1x ./web/.
func BenchmarkStoreLDAPPost10k(b *testing.B) {
	post := agent.LDAPCertsPost{Source: "ldap:ldap://127.0.0.1:389 " + slapdtest.Base}
	for _, e := range slapdtest.People(b, 10_000) {
		for _, der := range e.Certs {
			post.Certs = append(post.Certs, agent.LDAPCert{DN: "cn=" + e.CN + "," + slapdtest.Base, Attribute: "userCertificate", DER: der})
		}
	}
	benchPosts(b, agent.PathLDAPCerts, post, "discovered_certs", 10_001)
}

// The service storing one zone's 65,536 candidates (what a zone of
// 100,000 names gives under the benchmark's allow-list): the first post
// (all proposed), then the same again (all seen).
func BenchmarkStoreProposalPost65k(b *testing.B) {
	post := agent.DiscoveredPost{Source: "axfr:corp.example"}
	for i := range 65_536 {
		post.Candidates = append(post.Candidates, agent.Candidate{Name: fmt.Sprintf("h%06d.corp.example", i), Port: 443, Addresses: 1})
	}
	benchPosts(b, agent.PathDiscovered, post, "discovered", 65_536)
}
