// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/ports"
)

// fakeResolver answers from its map and never asks DNS; trailing dots do
// not matter, as with a real resolver.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[strings.TrimRight(strings.ToLower(host), ".")]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host (fake resolver)", Name: host, IsNotFound: true}
}

var loopback8 = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// portSet is the ports.Set of the given ports, as --tunnel-ports reads them.
func portSet(t testing.TB, list ...int) ports.Set {
	t.Helper()
	s := make([]string, len(list))
	for i, p := range list {
		s[i] = strconv.Itoa(p)
	}
	set, err := ParseTunnelPorts(s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// countingListener is a loopback listener that counts the connections it
// accepts.
type countingListener struct {
	ln       net.Listener
	port     int
	accepted chan string // the remote address of each connection accepted
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, accepted: make(chan string, 1024)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	return l
}

// others returns how many connections reached the listener before one of
// the test's own, made now: the kernel hands connections to Accept in the
// order they were established, so every earlier one is accepted before
// it (waiting for the count to move, as this did, could count an earlier
// connection accepted late as the test's own).
func (l *countingListener) others(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", l.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	own := c.LocalAddr().String()
	c.Close()
	n := 0
	for addr := range l.accepted {
		if addr == own {
			return n
		}
		n++
	}
	return n
}

func connect(t *testing.T, addr, target string) *http.Response {
	t.Helper()
	return rawProxy(t, addr, fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target))
}

// A CONNECT to loopback (by address, mapped address or a name resolving
// to it) is refused unless --tunnel-nets allows it, even on a port of
// --tunnel-ports; nothing reaches the listener.
func TestTunnelToLoopbackIsRefused(t *testing.T) {
	l := newCountingListener(t)
	tp := startProxyWith(t, ProxyConfig{ACME: HostList{}, Resolver: fakeResolver{"internal.test": {netip.MustParseAddr("127.0.0.1")},
		"rebound.test": {netip.MustParseAddr("::ffff:127.0.0.1"), netip.MustParseAddr("::1")}},
		Tunnel: TunnelPolicy{Ports: portSet(t, l.port)}})
	p := strconv.Itoa(l.port)
	for _, target := range []string{"127.0.0.1:" + p, "[::ffff:127.0.0.1]:" + p, "internal.test:" + p, "rebound.test:" + p} {
		resp := connect(t, tp.Addr, target)
		if body := bodyOf(resp); resp.StatusCode != 403 || !strings.Contains(body, "not a public address") || !strings.Contains(body, "--tunnel-nets") {
			t.Errorf("%s: %d %q", target, resp.StatusCode, body)
		}
	}
	if n := l.others(t); n != 0 {
		t.Errorf("%d connections reached the loopback listener", n)
	}
}

// A port off --tunnel-ports is refused, even to an allowed network; with
// --tunnel-ports none every CONNECT off the ACME list is.
func TestTunnelPortsAreEnforced(t *testing.T) {
	l := newCountingListener(t)
	target := "127.0.0.1:" + strconv.Itoa(l.port)
	for _, c := range []struct {
		name string
		flag []string
		want string
	}{
		{"default 443", []string{DefaultTunnelPorts}, "(443)"},
		{"none", []string{"none"}, "(none)"},
		{"a range", []string{"8000-8999", "443"}, "(443,8000-8999)"},
	} {
		set, err := ParseTunnelPorts(c.flag)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		tp := startProxyWith(t, ProxyConfig{ACME: HostList{}, Resolver: fakeResolver{}, Tunnel: TunnelPolicy{Ports: set, Nets: loopback8}})
		resp := connect(t, tp.Addr, target)
		if body := bodyOf(resp); resp.StatusCode != 403 || !strings.Contains(body, "port not in --tunnel-ports "+c.want) {
			t.Errorf("%s: %d %q", c.name, resp.StatusCode, body)
		}
	}
	if n := l.others(t); n != 0 {
		t.Errorf("%d connections reached the listener", n)
	}
}

// --tunnel-ports reads ports and ranges as KEYCHEST_MONITOR_PORTS does
// (internal/ports), or the one word none; a refusal names the flag and
// the word.
func TestParseTunnelPorts(t *testing.T) {
	for in, want := range map[string]string{"none": "", "NONE": "", "443": "443",
		"8443,443": "443,8443", "443,8000-8999": "443,8000-8999", "443 8443": "443,8443"} {
		set, err := ParseTunnelPorts(strings.Split(in, ","))
		if err != nil || set.String() != want {
			t.Errorf("%q: %q %v, want %q", in, set.String(), err, want)
		}
	}
	for _, bad := range [][]string{{"0"}, {"65536"}, {"https"}, {}, {""}, {"443", "none"}, {"none", "none"},
		{"+443"}, {"8999-8000"}} {
		set, err := ParseTunnelPorts(bad)
		if err == nil {
			t.Errorf("%q accepted: %v", bad, set)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "--tunnel-ports: ") || !strings.Contains(msg, "none") {
			t.Errorf("%q: the error %q names neither the flag nor the word none", bad, msg)
		}
	}
}

// The allowed case still works: a port of --tunnel-ports on a network of
// --tunnel-nets is tunnelled.
func TestTunnelAllowedByPortAndNet(t *testing.T) {
	l := newCountingListener(t)
	tp := startProxyWith(t, ProxyConfig{ACME: HostList{}, Resolver: fakeResolver{"internal.test": {netip.MustParseAddr("127.0.0.1")}},
		Tunnel: TunnelPolicy{Ports: portSet(t, l.port), Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	resp := connect(t, tp.Addr, "internal.test:"+strconv.Itoa(l.port))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %q", resp.StatusCode, bodyOf(resp))
	}
	if n := l.others(t); n != 1 {
		t.Errorf("%d connections reached the listener, want 1", n)
	}
}

// acmeFixture is an ACME host acme.test, resolved (by the fake resolver
// only) to a TLS server on 127.0.0.1, and a proxy that would tunnel to
// that server's port on loopback were it not an ACME host.
func acmeFixture(t *testing.T) (tp *testProxy, port string) {
	t.Helper()
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(up.Close)
	_, port, _ = net.SplitHostPort(up.Listener.Addr().String())
	n, _ := strconv.Atoi(port)
	hosts, _ := ParseHostList([]string{"acme.test:" + port})
	tp = startProxyWith(t, ProxyConfig{ACME: hosts, Upstream: x509.NewCertPool(),
		Resolver: fakeResolver{"acme.test": {netip.MustParseAddr("127.0.0.1")}},
		Tunnel:   TunnelPolicy{Ports: portSet(t, n), Nets: loopback8}})
	return tp, port
}

// The ACME host's name with a trailing dot, in any case, is intercepted:
// the client gets the proxy's own leaf.
func TestTrailingDotACMEHostIsIntercepted(t *testing.T) {
	tp, port := acmeFixture(t)
	for _, host := range []string{"acme.test.", "ACME.Test.", "acme.test"} {
		c, err := net.Dial("tcp", tp.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT %s:%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", host, port, host, port)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", host, resp, err)
		}
		tc := tls.Client(&peekedConn{Conn: c, r: br}, &tls.Config{ServerName: "acme.test", RootCAs: tp.Roots})
		if err := tc.Handshake(); err != nil {
			t.Errorf("%s: not intercepted: %v", host, err)
			continue
		}
		if iss := tc.ConnectionState().PeerCertificates[0].Issuer.CommonName; iss != "keychest-amp root" {
			t.Errorf("%s: issuer %q", host, iss)
		}
	}
}

// A CONNECT to an ACME host's address, not its name, is refused: the
// proxy could not intercept it, and the traffic would pass unseen.
func TestACMEHostAddressIsRefused(t *testing.T) {
	tp, port := acmeFixture(t)
	for _, target := range []string{"127.0.0.1:" + port, "[::ffff:127.0.0.1]:" + port} {
		resp := connect(t, tp.Addr, target)
		if body := bodyOf(resp); resp.StatusCode != 403 || !strings.Contains(body, "address of ACME host acme.test") {
			t.Errorf("%s: %d %q", target, resp.StatusCode, body)
		}
	}
	// Another loopback address on the same port is no ACME host's: tunnelled.
	resp := connect(t, tp.Addr, "127.0.0.2:"+port)
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 502 && resp.StatusCode != 200 { // nothing listens on 127.0.0.2 with this port: 502
		t.Errorf("127.0.0.2: %d", resp.StatusCode)
	}
}

// An IPv4 address written in a legacy form (decimal, octal, hexadecimal),
// which the system's resolver would turn into an address without the
// ACME-address check seeing it, is refused before any lookup (review).
func TestLegacyAddressFormsAreRefused(t *testing.T) {
	tp, port := acmeFixture(t)
	for _, host := range []string{"2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1", "0x7f000001", "a.b.0300"} {
		resp := connect(t, tp.Addr, host+":"+port)
		if body := bodyOf(resp); resp.StatusCode != 403 || !strings.Contains(body, "legacy form") {
			t.Errorf("%s: %d %q", host, resp.StatusCode, body)
		}
	}
	for _, host := range []string{"example.com", "4chan.example", "x.0a", "127.0.0.1"} {
		if numericName(host) {
			t.Errorf("%s taken for a numeric name", host)
		}
	}
}
