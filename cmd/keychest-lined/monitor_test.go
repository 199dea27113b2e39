// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/tls"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/internal/ports"
)

// The monitor wired into the server: a confirmed account adds a name
// served on loopback; "cert" reports its certificate, /metrics counts the
// probe, and the monitor stops with the server.
func TestMonitorInTheServer(t *testing.T) {
	e := newEndpoint(t, "shop.app.test", 20*24*time.Hour)
	srv := e.srv
	a := startApp(t, e.watch)
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email shop@example.com", "status ok 200")
	if err := a.db.SetAccount(t.Context(), "shop@example.com", "confirm"); err != nil {
		t.Fatal(err)
	}
	target := "shop.app.test:" + strconv.Itoa(srv.Port())
	c.must("command add domain "+target+" apikey "+key, "status ok 200 domain "+target+" added")
	var data string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if data = c.must("command cert domain "+target+" apikey "+key, "status ok 200"); !strings.HasPrefix(data, "state=unknown") {
			break
		}
	}
	if !strings.HasPrefix(data, "state=warning ") || !strings.Contains(data, " days=19 issuer=Test_Root_shop.app.test addresses=1 ") ||
		!strings.HasSuffix(data, " finding=expiry class=-") {
		t.Fatalf("cert: %q", data)
	}
	_, body := get(t, a.webURL+"/metrics")
	for _, want := range []string{`keychest_monitor_probes_total{class="ok"} 1`, "keychest_monitor_leases_held 0",
		"keychest_monitor_probe_duration_seconds_count 1"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// endpoint is a name served over TLS on 127.0.0.2 by a test CA, resolved
// by a DNS server on loopback.
type endpoint struct {
	ca     *certtest.CA
	srv    *certtest.Server
	name   string
	dns    *certtest.DNS
	caFile string
}

// newEndpoint serves name with a 90-day certificate that has left to run.
func newEndpoint(t *testing.T, name string, left time.Duration) *endpoint {
	t.Helper()
	e := &endpoint{name: name}
	var err error
	if e.ca, err = certtest.NewCA("Test Root "+name, time.Now()); err != nil {
		t.Fatal(err)
	}
	if e.srv, err = certtest.Serve("127.0.0.2:0", e.issue(t, left)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srv.Close)
	if e.dns, err = certtest.ServeDNS("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.dns.Close)
	e.dns.Set(name, netip.MustParseAddr("127.0.0.2"))
	e.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(e.caFile, e.ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// issue makes a 90-day certificate for the name with left to run.
func (e *endpoint) issue(t *testing.T, left time.Duration) tls.Certificate {
	t.Helper()
	cert, err := e.ca.Issue(certtest.Lifetime(time.Now(), 90*24*time.Hour, left, e.name))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// watch points the server's monitor at the endpoint, and lets "add" take
// its high loopback port (KEYCHEST_MONITOR_PORTS=1-65535).
func (e *endpoint) watch(c *Config) {
	c.MonitorResolver, c.MonitorCAFile, c.MonitorAllowNets = e.dns.Addr(), e.caFile, "127.0.0.0/8"
	if err := c.MonitorPorts.Decode(ports.Everything); err != nil {
		panic(err)
	}
}
