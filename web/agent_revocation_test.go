// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/monitor"
)

// revocationWorld is a relay world whose internal CA names an OCSP
// responder on loopback, and whose service checks revocation through a
// guard that allows allowed (nil: public addresses only, as by default).
func revocationWorld(t *testing.T, allowed []netip.Prefix) (*relayWorld, *certtest.OCSPResponder, string) {
	t.Helper()
	ca, err := certtest.NewCA("Corp Internal CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	responder, err := certtest.ServeOCSP("127.0.0.9:0", ca)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.9: %v", err)
	}
	t.Cleanup(responder.Close)
	ca.OCSPURL = responder.URL
	rev := monitor.NewRevocation(monitor.NewGuard(allowed), 2*time.Second, monitor.DefaultCRLMaxBytes, time.Now)
	w := newRelayWorldWith(t, 60*24*time.Hour, worldOptions{ca: ca, limits: AgentLimits{Revocation: rev}})
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	domain := "ldap.corp.example:" + strconv.Itoa(w.target.Port())
	if r := w.line(t, "command add domain "+domain+" apikey owner-key-0123456789 site office"); r.Code != lineproto.CodeOK {
		t.Fatalf("add: %+v", r)
	}
	return w, responder, domain
}

// probe runs the agent's pass with the target due, and returns "cert".
func (w *relayWorld) probe(t *testing.T, domain string) string {
	t.Helper()
	w.db.Exec(context.Background(), `UPDATE agent_targets SET next_due = now()`)
	if err := w.a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w.line(t, "command cert domain "+domain+" apikey owner-key-0123456789").Data
}

// The service, not the agent, asks the OCSP responder of a certificate
// seen through a relay, as the monitor does for a public target: good
// reads revocation=ok; revoked gives the class revoked and its finding.
func TestRelayedCertificateRevokedByOCSP(t *testing.T) {
	w, responder, domain := revocationWorld(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	if got := w.probe(t, domain); !strings.HasPrefix(got, "state=ok ") || !strings.HasSuffix(got, " class=- site=office revocation=ok") {
		t.Fatalf("cert before revocation: %s", got)
	}
	if responder.Requests.Load() == 0 {
		t.Fatal("the OCSP responder was not asked")
	}
	var raw []byte
	if err := w.db.QueryRow(context.Background(), `SELECT result FROM agent_job_relays LIMIT 1`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var seen relayProbe
	json.Unmarshal(raw, &seen)
	a, ok := seen.addressResult()
	if !ok || len(a.Chain) == 0 {
		t.Fatalf("relay result: %s", raw)
	}
	responder.Revoke(a.Chain[0].SerialNumber)
	for range 2 { // the judge opens a revoked finding on the second probe that sees it
		w.probe(t, domain)
	}
	got := w.line(t, "command cert domain "+domain+" apikey owner-key-0123456789").Data
	if !strings.HasPrefix(got, "state=critical ") || !strings.Contains(got, " finding=revoked") ||
		!strings.HasSuffix(got, " class=revoked site=office revocation=revoked") {
		t.Fatalf("cert after revocation: %s", got)
	}
}

// The service's guard refuses the responder's address (a private CA's
// responder on a private address, as loopback is here without
// KEYCHEST_MONITOR_ALLOW_NETS): it is never dialled, and the result reads
// revocation=unknown, neither revoked nor ok.
func TestRelayedRevocationUnknownBehindTheGuard(t *testing.T) {
	w, responder, domain := revocationWorld(t, nil)
	got := w.probe(t, domain)
	if !strings.HasPrefix(got, "state=ok ") || !strings.HasSuffix(got, " class=- site=office revocation=unknown") {
		t.Fatalf("cert: %s", got)
	}
	if n := responder.Requests.Load(); n != 0 {
		t.Fatalf("the OCSP responder on a refused address was asked %d times", n)
	}
}
