package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/certtest"
)

// The monitor wired into the server: a confirmed account adds a name
// served on loopback; "cert" reports its certificate, /metrics counts the
// probe, and the monitor stops with the server.
func TestMonitorInTheServer(t *testing.T) {
	now := time.Now()
	ca, err := certtest.NewCA("App Test Root", now)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := ca.Issue(certtest.Lifetime(now, 90*24*time.Hour, 20*24*time.Hour, "shop.app.test"))
	srv, err := certtest.Serve("127.0.0.2:0", cert)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dns, err := certtest.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.Set("shop.app.test", netip.MustParseAddr("127.0.0.2"))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, ca.PEM, 0o644)
	a := startApp(t, func(c *Config) {
		c.MonitorResolver, c.MonitorCAFile, c.MonitorAllowNets = dns.Addr(), caFile, "127.0.0.0/8"
	})
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
	if !strings.HasPrefix(data, "state=warning ") || !strings.Contains(data, " days=19 issuer=App_Test_Root addresses=1 ") ||
		!strings.HasSuffix(data, " finding=expiry") {
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
