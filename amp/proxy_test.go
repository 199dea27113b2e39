// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// rawProxy sends raw bytes to the proxy and returns its response.
func rawProxy(t *testing.T, addr, send string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, send)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", send, err)
	}
	return resp
}

func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestBadInputGetsClearErrorsAndTheProxyKeepsServing(t *testing.T) {
	hosts, _ := ParseHostList([]string{"localhost:8001"})
	tp := startProxy(t, hosts, x509.NewCertPool())
	cases := []struct {
		name, send string
		code       int
		text       string
	}{
		{"garbage", "\x00\x01garbage\r\n\r\n", 400, "expected an HTTP proxy request"},
		{"CONNECT without port", "CONNECT localhost HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, "CONNECT needs host:port"},
		{"unlisted port of an ACME host", "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n", 403, "port 443 of ACME host localhost is not on the list"},
		{"plain GET elsewhere", "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", 405, "only CONNECT"},
	}
	for _, c := range cases {
		resp := rawProxy(t, tp.Addr, c.send)
		if body := bodyOf(resp); resp.StatusCode != c.code || !strings.Contains(body, c.text) {
			t.Errorf("%s: %d %q", c.name, resp.StatusCode, body)
		}
	}
	// Still serving: the root's PEM.
	resp := rawProxy(t, tp.Addr, "GET http://amp.keychest.invalid/ HTTP/1.1\r\nHost: amp.keychest.invalid\r\n\r\n")
	if body := bodyOf(resp); resp.StatusCode != 200 || body != string(tp.CA.PEM()) {
		t.Errorf("root PEM: %d %q", resp.StatusCode, body)
	}
}

func TestClientOutsideAllowIsRefused(t *testing.T) {
	ca, _, _ := LoadCA(t.TempDir(), Scope{Names: []string{"localhost"}})
	p := NewProxy(ProxyConfig{ACME: HostList{}, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Log: zerolog.Nop()}, ca)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go p.Serve(ln)
	defer ln.Close()
	resp := rawProxy(t, ln.Addr().String(), "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	if body := bodyOf(resp); resp.StatusCode != 403 || !strings.Contains(body, "127.0.0.1 is not in the allowed networks") {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
}

// Hosts off the ACME list are tunnelled: the client sees the upstream's
// own certificate, and bytes pass unchanged both ways.
func TestOtherHostsAreTunnelled(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "echo %s", body)
	}))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	upPort, _ := strconv.Atoi(port)
	tp := startProxyWith(t, ProxyConfig{ACME: HostList{"localhost": {1}}, Upstream: x509.NewCertPool(),
		Resolver: fakeResolver{"localhost": {netip.MustParseAddr("127.0.0.2")}}, Tunnel: TunnelPolicy{Ports: portSet(t, upPort), Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	for _, scheme := range []string{"http", "https"} {
		c := tp.client(scheme)
		tr := c.Transport.(*http.Transport)
		tr.TLSClientConfig.RootCAs = roots
		var seen []*x509.Certificate // the proxy's own (https) and the target's
		tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			seen = append(seen, cs.PeerCertificates[0])
			return nil
		}
		if scheme == "https" { // the proxy's own TLS is checked against the proxy's root
			tr.TLSClientConfig.RootCAs = tp.Roots.Clone()
			tr.TLSClientConfig.RootCAs.AddCert(up.Certificate())
		}
		resp, err := c.Post(up.URL, "text/plain", bytes.NewReader([]byte("ping")))
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		if body := bodyOf(resp); body != "echo ping" {
			t.Errorf("%s: %q", scheme, body)
		}
		if !seen[len(seen)-1].Equal(up.Certificate()) {
			t.Errorf("%s: the target's certificate is not the upstream's: %v", scheme, seen[len(seen)-1].Issuer)
		}
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if len(tp.exchanges) != 0 {
		t.Errorf("a tunnel was intercepted: %d exchanges", len(tp.exchanges))
	}
}

// A malformed JWS to an ACME host gets the proxy's own problem document
// and is not forwarded.
func TestMalformedJWSIsRefused(t *testing.T) {
	forwarded := false
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { forwarded = true }))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	hosts, _ := ParseHostList([]string{"127.0.0.1:" + port})
	upRoots := x509.NewCertPool()
	upRoots.AddCert(up.Certificate())
	tp := startProxy(t, hosts, upRoots)
	resp, err := tp.client("http").Post(up.URL+"/new-order", "application/jose+json", strings.NewReader(`{"protected":"e30","payload":"`))
	if err != nil {
		t.Fatal(err)
	}
	body := bodyOf(resp)
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(body, "urn:ietf:params:acme:error:malformed") || forwarded {
		t.Errorf("%d %s %q forwarded=%v", resp.StatusCode, resp.Header.Get("Content-Type"), body, forwarded)
	}
	// The same connection and proxy go on: a GET passes.
	if resp, err = tp.client("http").Get(up.URL + "/dir"); err != nil || resp.StatusCode != 200 || !forwarded {
		t.Errorf("after the refusal: %v %v", resp, err)
	}
}

// Shutdown refuses new clients but lets a request in flight finish.
func TestShutdownDrainsRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, `{"status":"valid"}`)
	}))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	hosts, _ := ParseHostList([]string{"127.0.0.1:" + port})
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	ca, _, _ := LoadCA(t.TempDir(), hosts.Scope(netip.Addr{}))
	p := NewProxy(ProxyConfig{ACME: hosts, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Upstream: roots, Log: zerolog.Nop()}, ca)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go p.Serve(ln)
	tp := &testProxy{Addr: ln.Addr().String(), Roots: x509.NewCertPool()}
	tp.Roots.AddCert(ca.Root())
	result := make(chan error, 1)
	go func() {
		resp, err := tp.client("http").Get(up.URL + "/order/1")
		if err == nil && (resp.StatusCode != 200 || bodyOf(resp) != `{"status":"valid"}`) {
			err = fmt.Errorf("response %d", resp.StatusCode)
		}
		result <- err
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- p.Shutdown(ctx)
	}()
	// New clients are refused once the listener is closed.
	for {
		c, err := net.Dial("tcp", tp.Addr)
		if err != nil {
			break
		}
		c.Close()
		runtime.Gosched()
	}
	close(release)
	if err := <-result; err != nil {
		t.Errorf("request in flight: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// The ACME server's certificate is verified: one the proxy does not trust
// gets the client a 502, never a silent relay.
func TestUntrustedACMEServerIs502(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	hosts, _ := ParseHostList([]string{"127.0.0.1:" + port})
	tp := startProxy(t, hosts, x509.NewCertPool()) // trusts nothing
	resp, err := tp.client("http").Get(up.URL + "/dir")
	if err != nil {
		t.Fatal(err)
	}
	if body := bodyOf(resp); resp.StatusCode != 502 || !strings.Contains(body, "certificate") {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
}
