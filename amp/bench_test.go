// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// acmeLike stands in for an ACME server: it answers a POST of a JWS with a
// small JSON object and a nonce, as a CA answers a poll.
func acmeLike(b *testing.B) (*httptest.Server, *x509.CertPool) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Replay-Nonce", "bm9uY2U")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"valid","identifier":{"type":"dns","value":"a.example"},"challenges":[]}`)
	}))
	roots := x509.NewCertPool()
	roots.AddCert(up.Certificate())
	return up, roots
}

// benchProxy runs the proxy as keychest-amp does: tracker, journal file
// and disk queue on every exchange.
func benchProxy(b *testing.B, hosts HostList, upstream *x509.CertPool) (string, *CA) {
	return benchProxyWith(b, hosts, upstream, TunnelPolicy{})
}

// benchProxyWith is benchProxy with a tunnel policy.
func benchProxyWith(b *testing.B, hosts HostList, upstream *x509.CertPool, tunnel TunnelPolicy) (string, *CA) {
	dir := b.TempDir()
	ca, _, err := LoadCA(dir, hosts.Scope(netip.Addr{}))
	if err != nil {
		b.Fatal(err)
	}
	q, _ := OpenQueue(filepath.Join(dir, "queue"), 1<<30, nil)
	j, _ := OpenJournal(JournalConfig{File: filepath.Join(dir, "audit.json"), StateDir: dir, Queue: q})
	tr := NewTracker(1000)
	p := NewProxy(ProxyConfig{ACME: hosts, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Upstream: upstream,
		Log: zerolog.Nop(), Tunnel: tunnel, Observe: func(x Exchange) {
			for _, ev := range tr.Observe(x) {
				j.Write(ev)
			}
		}}, ca)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go p.Serve(ln)
	b.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), ca
}

// p50 of one keep-alive client posting a JWS again and again.
func postLatency(b *testing.B, c *http.Client, target string, n int) time.Duration {
	body := `{"protected":"e30","payload":"","signature":"AA"}`
	times := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		resp, err := c.Post(target, "application/jose+json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2]
}

// BenchmarkAddedLatency: p50 of an ACME POST through the proxy (TLS
// terminated, relayed, understood, journaled and queued) minus the p50 of
// the same POST straight to the server, in one run.
func BenchmarkAddedLatency(b *testing.B) {
	up, roots := acmeLike(b)
	defer up.Close()
	u, _ := url.Parse(up.URL)
	port, _ := strconv.Atoi(u.Port())
	addr, ca := benchProxy(b, HostList{"127.0.0.1": {port}}, roots)
	proxyRoots := x509.NewCertPool()
	proxyRoots.AddCert(ca.Root())
	pu, _ := url.Parse("http://" + addr)
	direct := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(roots)}}
	via := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: tlsConfigFor(proxyRoots)}}
	postLatency(b, direct, up.URL+"/authz/1", 50) // warm: connections and leaves
	postLatency(b, via, up.URL+"/authz/1", 50)
	n := max(b.N, 200)
	b.ResetTimer()
	d := postLatency(b, direct, up.URL+"/authz/1", n)
	v := postLatency(b, via, up.URL+"/authz/1", n)
	b.ReportMetric(float64(d.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(v.Microseconds()), "proxy-p50-µs")
	b.ReportMetric(float64((v - d).Microseconds()), "added-p50-µs")
}

// BenchmarkTunnelMemory: heap and stacks per open tunnel (a CONNECT to a
// host off the ACME list, held open and idle).
func BenchmarkTunnelMemory(b *testing.B) {
	const tunnels = 500
	up, _ := net.Listen("tcp", "127.0.0.1:0")
	defer up.Close()
	var held []net.Conn
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	addr, _ := benchProxyWith(b, HostList{}, x509.NewCertPool(),
		TunnelPolicy{Ports: portSet(b, up.Addr().(*net.TCPAddr).Port), Nets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	before := memInUse()
	var clients []net.Conn
	for range tunnels {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", up.Addr())
		buf := make([]byte, 64)
		if n, _ := c.Read(buf); !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200") {
			b.Fatalf("CONNECT: %q", buf[:n])
		}
		clients = append(clients, c)
	}
	after := memInUse()
	b.ReportMetric(float64(after-before)/tunnels/1024, "KiB/tunnel")
	for _, c := range clients {
		c.Close()
	}
}

func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
