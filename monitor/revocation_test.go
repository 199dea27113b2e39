// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/certtest"
)

// countingServer serves h on 127.0.0.9 and counts the requests per path.
func countingServer(t *testing.T, h http.HandlerFunc) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.9:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.9: %v", err)
	}
	var hits atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits.Add(1)
		h(w, req)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), &hits
}

// revokedLeaf issues a leaf of f.ca naming crlURL, and a CRL of f.ca
// that revokes it.
func revokedLeaf(t *testing.T, f *fixture, crlURL string) (*x509.Certificate, []byte) {
	t.Helper()
	f.ca.CRLURL = crlURL
	leaf := f.issue(certtest.Lifetime(f.now, 90*day, 60*day, "victim.test")).Leaf
	crl, err := f.ca.CRL(f.now.Add(-time.Hour), f.now.Add(time.Hour), leaf.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, crl
}

// An agent's own CA (even under the victim CA's name) issuing a leaf that
// names the victim's CRL URL, checked first, does not make the victim's
// revoked leaf read unknown: the CRL's signature is checked against each
// asking issuer.
func TestCRLOfAnotherCANamingTheSameURL(t *testing.T) {
	f := newFixture(t)
	url, setCRL, stop, err := certtest.ServeBytes("127.0.0.9:0", nil)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.9: %v", err)
	}
	defer stop()
	victim, crl := revokedLeaf(t, f, url+"/victim.crl")
	setCRL(crl)
	attackerCA, err := certtest.NewCA("Test Root "+t.Name(), f.now) // the same name, another key
	if err != nil {
		t.Fatal(err)
	}
	attackerCA.CRLURL = f.ca.CRLURL
	tc, err := attackerCA.Issue(certtest.Lifetime(f.now, 90*day, 60*day, "attacker.test"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRevocation(NewGuard(loopback), time.Second, DefaultCRLMaxBytes, func() time.Time { return f.now })
	if got, why := r.Status(context.Background(), tc.Leaf, attackerCA.Cert); got != RevocationUnknown {
		t.Fatalf("attacker's leaf: %s %s, want unknown", got, why)
	}
	if got, why := r.Status(context.Background(), victim, f.ca.Cert); got != RevocationRevoked {
		t.Fatalf("victim's revoked leaf after the attacker's: %s %s, want revoked", got, why)
	}
	if got, _ := r.Status(context.Background(), tc.Leaf, attackerCA.Cert); got != RevocationUnknown {
		t.Fatalf("attacker's leaf after the victim's: %s, want unknown", got)
	}
}

// The CRL cache keeps at most maxEntries CRLs and maxCached bytes,
// dropping the least recently used.
func TestCRLCacheBounded(t *testing.T) {
	f := newFixture(t)
	crl, _ := f.ca.CRL(f.now, f.now.Add(time.Hour))
	url, _, stop, err := certtest.ServeBytes("127.0.0.9:0", crl)
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.9: %v", err)
	}
	defer stop()
	r := NewRevocation(NewGuard(loopback), time.Second, DefaultCRLMaxBytes, func() time.Time { return f.now })
	r.maxEntries = 8
	ask := func(i int) {
		f.ca.CRLURL = url + "/" + strconv.Itoa(i) + ".crl"
		leaf := f.issue(certtest.Lifetime(f.now, 90*day, 60*day, "x.test")).Leaf
		if got, why := r.Status(context.Background(), leaf, f.ca.Cert); got != RevocationOK {
			t.Fatalf("CRL %d: %s %s", i, got, why)
		}
	}
	for i := range 20 {
		ask(0) // kept: always the most recently used
		ask(i)
	}
	if len(r.cache) != 8 || r.cache[url+"/0.crl"] == nil || r.cache[url+"/19.crl"] == nil || r.cache[url+"/5.crl"] != nil {
		t.Fatalf("cache of %d entries (want the 8 most recently used)", len(r.cache))
	}
	r.maxCached = 3 * int64(len(crl))
	for i := 20; i < 30; i++ {
		ask(i)
	}
	if len(r.cache) != 3 || r.bytes > r.maxCached || r.cache[url+"/29.crl"] == nil {
		t.Fatalf("cache of %d entries, %d bytes over a cap of %d", len(r.cache), r.bytes, r.maxCached)
	}
}

// A CRL URL that redirects reads unknown: the redirect is not followed.
func TestCRLRedirectNotFollowed(t *testing.T) {
	f := newFixture(t)
	var crl []byte
	var followed atomic.Int64
	url, _ := countingServer(t, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/moved.crl" {
			http.Redirect(w, req, "/here.crl", http.StatusFound)
			return
		}
		followed.Add(1)
		w.Write(crl)
	})
	leaf, body := revokedLeaf(t, f, url+"/moved.crl")
	crl = body
	r := NewRevocation(NewGuard(loopback), time.Second, DefaultCRLMaxBytes, func() time.Time { return f.now })
	if got, why := r.Status(context.Background(), leaf, f.ca.Cert); got != RevocationUnknown || followed.Load() != 0 {
		t.Fatalf("redirected CRL: %s %s, %d requests to its target", got, why, followed.Load())
	}
}

// A CRL or OCSP URL on a port other than 80 and 443 is not dialled (on
// an address where only those ports are allowed), and reads unknown.
func TestRevocationOtherPortNotDialled(t *testing.T) {
	f := newFixture(t)
	url, hits := countingServer(t, func(w http.ResponseWriter, _ *http.Request) {})
	r := NewRevocation(NewGuard(loopback), time.Second, DefaultCRLMaxBytes, func() time.Time { return f.now })
	r.anyPort = func(netip.Addr) bool { return false } // treat loopback as a public address
	f.ca.CRLURL = url + "/x.crl"
	leaf := f.issue(certtest.Lifetime(f.now, 90*day, 60*day, "x.test")).Leaf
	if got, why := r.Status(context.Background(), leaf, f.ca.Cert); got != RevocationUnknown {
		t.Fatalf("CRL on another port: %s %s", got, why)
	}
	f.ca.CRLURL, f.ca.OCSPURL = "", url
	leaf = f.issue(certtest.Lifetime(f.now, 90*day, 60*day, "y.test")).Leaf
	if got, why := r.Status(context.Background(), leaf, f.ca.Cert); got != RevocationUnknown {
		t.Fatalf("OCSP on another port: %s %s", got, why)
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests on a port other than 80 and 443", hits.Load())
	}
}
