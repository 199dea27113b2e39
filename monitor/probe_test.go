// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"crypto/tls"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/internal/clientnet"
	"github.com/keychest/keychest-lined/internal/resolve"
)

// mapResolver answers from a table; names not in it do not exist.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// fixture is a CA and a prober that trusts it, on a fixed clock.
type fixture struct {
	t   *testing.T
	ca  *certtest.CA
	now time.Time
	dns mapResolver
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	ca, err := certtest.NewCA("Test Root "+t.Name(), now)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ca: ca, now: now, dns: mapResolver{}}
}

func (f *fixture) prober(allow []netip.Prefix) *TLSProber {
	p := NewProber(f.dns, NewGuard(allow), f.ca.Pool(), 8)
	p.Now = func() time.Time { return f.now }
	p.DialTimeout, p.HandshakeTimeout = time.Second, time.Second
	return p
}

func (f *fixture) issue(l certtest.Leaf) tls.Certificate {
	f.t.Helper()
	c, err := f.ca.Issue(l)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// serve starts a TLS server on ip with a leaf of lifetime life and left
// remaining, for name, and makes name resolve to ip.
func (f *fixture) serve(ip, name string, life, left time.Duration) *certtest.Server {
	f.t.Helper()
	s, err := certtest.Serve(ip+":0", f.issue(certtest.Lifetime(f.now, life, left, name)))
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(s.Close)
	f.dns[name] = append(f.dns[name], netip.MustParseAddr(ip))
	return s
}

const day = 24 * time.Hour

func TestProbeOK(t *testing.T) {
	f := newFixture(t)
	s := f.serve("127.0.0.2", "ok.test", 90*day, 60*day)
	res := f.prober(loopback).Probe(context.Background(), "ok.test", s.Port())
	if res.Class != ClassOK || len(res.Addresses) != 1 {
		t.Fatalf("result %+v", res)
	}
	a := res.Addresses[0]
	if a.Address != netip.MustParseAddr("127.0.0.2") || a.TLSVersion != "TLS 1.3" || len(a.Chain) != 1 {
		t.Fatalf("address %+v", a)
	}
	info := CertInfo(a.Chain[0])
	if info.KeyType != "ECDSA" || info.KeyBits != 256 || info.IssuerCN != f.ca.Cert.Subject.CommonName ||
		info.SANs[0] != "ok.test" || !info.NotAfter.Equal(f.now.Add(60*day).UTC()) {
		t.Fatalf("cert info %+v", info)
	}
}

// Loopback without an allow-list: not_allowed, and not one packet sent.
func TestProbeLoopbackNotAllowed(t *testing.T) {
	f := newFixture(t)
	s := f.serve("127.0.0.2", "private.test", 90*day, 60*day)
	res := f.prober(nil).Probe(context.Background(), "private.test", s.Port())
	if res.Class != ClassNotAllowed {
		t.Fatalf("class %s, want not_allowed", res.Class)
	}
	if n := s.Accepts.Load(); n != 0 {
		t.Fatalf("%d connections reached the server", n)
	}
}

func TestGuard(t *testing.T) {
	g := NewGuard(nil)
	for addr, want := range map[string]bool{
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"100.64.0.1": false, "169.254.169.254": false, "192.0.2.7": false, "198.51.100.1": false,
		"203.0.113.5": false, "224.0.0.1": false, "0.0.0.0": false, "255.255.255.255": false,
		"::1": false, "::": false, "fe80::1": false, "fd00::1": false, "ff02::1": false, "2001:db8::1": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "64:ff9b::a9fe:a9fe": false,
		// special IPv6 ranges (issue 20): only 2000::/3 minus the IANA special-purpose ranges passes
		"::7f00:1": false, "::a9fe:a9fe": false, "::ffff:0:7f00:1": false, "2001::1": false, "2001:1ff::1": false,
		"3fff::1": false, "5f00::1": false, "2620:4f:8000::1": false, "4000::1": false,
		"93.184.215.14": true, "1.1.1.1": true, "2606:4700::1111": true, "::ffff:8.8.8.8": true,
	} {
		if got := g.Allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	nets, err := clientnet.ParseNets("127.0.0.0/8, 10.0.0.5")
	if err != nil {
		t.Fatal(err)
	}
	g = NewGuard(nets)
	if !g.Allowed(netip.MustParseAddr("127.9.9.9")) || !g.Allowed(netip.MustParseAddr("10.0.0.5")) ||
		g.Allowed(netip.MustParseAddr("10.0.0.6")) {
		t.Fatal("allow-list not applied")
	}
	if _, err := clientnet.ParseNets("10.0.0.0/33"); err == nil {
		t.Fatal("bad CIDR accepted")
	}
}

// Each failure has its class.
func TestProbeClasses(t *testing.T) {
	f := newFixture(t)
	ok := f.serve("127.0.0.2", "good.test", 90*day, 60*day)
	port := ok.Port()
	expired := f.serve("127.0.0.3", "expired.test", 90*day, -day)
	future, err := certtest.Serve("127.0.0.4:0", f.issue(certtest.Leaf{Names: []string{"future.test"},
		NotBefore: f.now.Add(day), NotAfter: f.now.Add(91 * day)}))
	if err != nil {
		t.Fatal(err)
	}
	defer future.Close()
	f.dns["future.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.4")}
	other, _ := certtest.NewCA("Other Root", f.now)
	stranger, _ := other.Issue(certtest.Lifetime(f.now, 90*day, 60*day, "stranger.test"))
	untrusted, _ := certtest.Serve("127.0.0.5:0", stranger)
	defer untrusted.Close()
	f.dns["stranger.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.5")}
	f.dns["wrong.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	closed, _ := net.Listen("tcp", "127.0.0.6:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	f.dns["closed.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.6")}
	silent, _ := net.Listen("tcp", "127.0.0.7:0") // accepts, never speaks TLS
	defer silent.Close()
	f.dns["silent.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.7")}
	plain, _ := certtest.ServePlain("127.0.0.8:0")
	defer plain.Close()
	f.dns["plain.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.8")}
	f.dns["private.test"] = []netip.Addr{netip.MustParseAddr("10.0.0.5")}
	f.dns["empty.test"] = []netip.Addr{}

	p := f.prober(loopback)
	for _, c := range []struct {
		host string
		port int
		want Class
	}{
		{"good.test", port, ClassOK},
		{"expired.test", expired.Port(), ClassExpired},
		{"future.test", future.Port(), ClassNotYetValid},
		{"stranger.test", untrusted.Port(), ClassUntrusted},
		{"wrong.test", port, ClassMismatch},
		{"closed.test", closedPort, ClassRefused},
		{"silent.test", silent.Addr().(*net.TCPAddr).Port, ClassTimeout},
		{"plain.test", plain.Port(), ClassTLSError},
		{"nowhere.test", 443, ClassNXDomain},
		{"private.test", 443, ClassNotAllowed},
		{"empty.test", 443, ClassNXDomain},
	} {
		if got := p.Probe(context.Background(), c.host, c.port).Class; got != c.want {
			t.Errorf("%s: class %s, want %s", c.host, got, c.want)
		}
	}
}

// A revoked certificate is found on its CA's CRL, served on loopback; the
// CRL is fetched once and cached until its NextUpdate.
func TestProbeRevokedByCRL(t *testing.T) {
	f := newFixture(t)
	crl, err := f.ca.CRL(f.now.Add(-time.Hour), f.now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	url, setCRL, stop, err := certtest.ServeBytes("127.0.0.9:0", crl)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	f.ca.CRLURL = url + "/root.crl"
	s := f.serve("127.0.0.2", "revoked.test", 90*day, 60*day)
	p := f.prober(loopback)
	p.Revocation = NewRevocation(NewGuard(loopback), time.Second, DefaultCRLMaxBytes, func() time.Time { return f.now })
	if c := p.Probe(context.Background(), "revoked.test", s.Port()).Class; c != ClassOK {
		t.Fatalf("before revocation: %s", c)
	}
	serial := leafSerial(t, p, s)
	revoked, _ := f.ca.CRL(f.now, f.now.Add(2*time.Hour), serial)
	setCRL(revoked)
	if c := p.Probe(context.Background(), "revoked.test", s.Port()).Class; c != ClassOK {
		t.Fatalf("cached CRL not used until its NextUpdate: %s", c)
	}
	f.now = f.now.Add(61 * time.Minute)
	if c := p.Probe(context.Background(), "revoked.test", s.Port()).Class; c != ClassRevoked {
		t.Fatalf("after revocation: %s, want revoked", c)
	}
}

func leafSerial(t *testing.T, p *TLSProber, s *certtest.Server) *big.Int {
	t.Helper()
	res := p.Probe(context.Background(), "revoked.test", s.Port())
	return res.Addresses[0].Chain[0].SerialNumber
}

// The CRL fetch is refused by the guard like a probe: a CRL on a
// disallowed address is not fetched, and the certificate is not called
// revoked.
func TestCRLFollowsGuard(t *testing.T) {
	f := newFixture(t)
	crl, _ := f.ca.CRL(f.now, f.now.Add(time.Hour))
	url, _, stop, _ := certtest.ServeBytes("127.0.0.9:0", crl)
	defer stop()
	f.ca.CRLURL = url + "/root.crl"
	leaf := f.issue(certtest.Lifetime(f.now, 90*day, 60*day, "x.test")).Leaf
	r := NewRevocation(NewGuard(nil), time.Second, DefaultCRLMaxBytes, time.Now)
	if revoked, _ := r.Check(context.Background(), leaf, f.ca.Cert); revoked {
		t.Fatal("revoked without a CRL")
	}
	e := r.cache[f.ca.CRLURL]
	if e == nil || e.err == nil {
		t.Fatalf("CRL on loopback fetched without an allow-list: %+v", e)
	}
}

func TestCRLSizeCap(t *testing.T) {
	f := newFixture(t)
	url, _, stop, _ := certtest.ServeBytes("127.0.0.9:0", make([]byte, 4096))
	defer stop()
	f.ca.CRLURL = url + "/big.crl"
	leaf := f.issue(certtest.Lifetime(f.now, 90*day, 60*day, "x.test")).Leaf
	r := NewRevocation(NewGuard(loopback), time.Second, 1024, time.Now)
	r.Check(context.Background(), leaf, f.ca.Cert)
	if e := r.cache[f.ca.CRLURL]; e == nil || e.err == nil {
		t.Fatal("CRL over the size cap accepted")
	}
}

// Names resolve through a DNS server on loopback, as with
// KEYCHEST_MONITOR_RESOLVER; an unknown name is dns_nxdomain.
func TestProbeThroughDNSServer(t *testing.T) {
	f := newFixture(t)
	s := f.serve("127.0.0.2", "dns.test", 90*day, 60*day)
	dns, err := certtest.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.Set("dns.test", netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"))
	p := f.prober(loopback)
	p.Resolver = resolve.New(dns.Addr())
	res := p.Probe(context.Background(), "dns.test", s.Port())
	if len(res.Addresses) != 2 || res.Addresses[0].Class != ClassOK || res.Addresses[1].Class != ClassRefused {
		t.Fatalf("result %+v", res)
	}
	if c := p.Probe(context.Background(), "missing.test", s.Port()).Class; c != ClassNXDomain {
		t.Fatalf("unknown name: %s", c)
	}
}
