// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCheckServerURL(t *testing.T) {
	good := []string{"https://keychest.example", "https://keychest.example:8443/", "http://127.0.0.1:8080",
		"http://127.3.4.5", "http://[::1]:80", "http://localhost:8080"}
	bad := []string{"", "keychest.example", "http://keychest.example", "http://10.0.0.1", "http://[::ffff:10.0.0.1]",
		"ftp://keychest.example", "https://user:pw@keychest.example", "https://keychest.example/api",
		"https://keychest.example?x=1", "http://localhost.evil.example", "https://"}
	for _, s := range good {
		if _, err := CheckServerURL(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
	for _, s := range bad {
		if _, err := CheckServerURL(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// writeCA writes the test server's certificate as a PEM file for --ca.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	raw := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// connectProxy is an HTTP CONNECT proxy on loopback that sends every
// tunnel to target, whatever host it names, and counts them.
func connectProxy(t *testing.T, target string) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		n.Add(1)
		w.WriteHeader(http.StatusOK)
		down, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		go func() { io.Copy(up, down); up.Close() }()
		io.Copy(down, up)
		down.Close()
	}))
	t.Cleanup(p.Close)
	return p.URL, &n
}

// The client goes through HTTPS_PROXY with CONNECT and trusts --ca. The
// server's name (example.com, in httptest's certificate) is resolved by
// nobody: the proxy sends the tunnel to the loopback server.
func TestClientThroughProxyWithCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"id":"a1@agents.example","claimed":true}`)
	}))
	defer srv.Close()
	proxyURL, tunnels := connectProxy(t, srv.Listener.Addr().String())
	t.Setenv("HTTPS_PROXY", proxyURL)
	t.Setenv("NO_PROXY", "")
	server := "https://example.com:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	if _, err := NewClient(server, ""); err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(server, writeCA(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	c.Key = "k"
	var beat Beat
	if err := c.postJSON(context.Background(), PathHeartbeat, Summary{}, &beat); err != nil {
		t.Fatal(err)
	}
	if !beat.Claimed || tunnels.Load() != 1 {
		t.Fatalf("beat %+v, tunnels %d", beat, tunnels.Load())
	}
	// NO_PROXY is honoured: the transport names no proxy for the server.
	t.Setenv("NO_PROXY", "example.com")
	c2, _ := NewClient(server, writeCA(t, srv))
	req, _ := http.NewRequest(http.MethodPost, server+PathHeartbeat, nil)
	if u, err := c2.http.Transport.(*http.Transport).Proxy(req); u != nil || err != nil {
		t.Fatalf("NO_PROXY=example.com: proxy %v, %v", u, err)
	}
	if u, _ := c.http.Transport.(*http.Transport).Proxy(req); u == nil || u.String() != proxyURL {
		t.Fatalf("HTTPS_PROXY: proxy %v", u)
	}
}

// Without --ca the test server's certificate is not trusted.
func TestClientRefusesUnknownCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	t.Setenv("HTTPS_PROXY", "")
	c, err := NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.postJSON(context.Background(), PathHeartbeat, Summary{}, nil); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted server: %v", err)
	}
}
