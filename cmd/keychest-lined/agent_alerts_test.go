// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/tls"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/internal/smtptest"
)

// siteWorld is the whole server with SMTP, a confirmed owner, and a
// claimed agent of site "office" whose allow-list is 127.0.0.50/32 on the
// port of a TLS server there (an internal CA's certificate, the CA pushed
// for the site), resolving names with a DNS server on loopback. The
// central monitor runs without KEYCHEST_MONITOR_ALLOW_NETS: the relay is
// the only way to the target.
type siteWorld struct {
	app    *testApp
	mail   *smtptest.Server
	c      *client
	key    string
	agent  *agent.Agent
	target *certtest.Server
	dns    *certtest.DNS
	ca     *certtest.CA
}

func newSiteWorld(t *testing.T, left time.Duration, change func(*Config)) *siteWorld {
	t.Helper()
	w := &siteWorld{mail: smtptest.Start(t)}
	var err error
	if w.ca, err = certtest.NewCA("Corp Internal CA", time.Now()); err != nil {
		t.Fatal(err)
	}
	if w.target, err = certtest.Serve("127.0.0.50:0", w.issue(t, left)); err != nil {
		t.Skipf("cannot listen on 127.0.0.50: %v", err)
	}
	t.Cleanup(w.target.Close)
	if w.dns, err = certtest.ServeDNS("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.dns.Close)
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	w.app = startApp(t, func(c *Config) {
		withSMTP(w.mail)(c)
		c.AlertBatch = 50 * time.Millisecond
		if change != nil {
			change(c)
		}
	})
	w.c = w.app.dial(t)
	w.key = w.c.must("command apikey", "status ok 200")
	w.c.must("command claim apikey "+w.key+" email owner@example.com", "status ok 200")
	post(t, link(t, w.mail.Wait(t, 1, 10*time.Second)[0].Body(), "confirm"))

	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "allow.conf"), []byte("allow 127.0.0.50/32 "+strconv.Itoa(w.target.Port())+"\n"), 0o600)
	caFile := filepath.Join(dir, "site-ca.pem")
	os.WriteFile(caFile, w.ca.PEM, 0o600)
	if w.agent, err = agent.Open(agent.Config{Dir: dir, Server: w.app.webURL, Version: "1", UID: os.Getuid(), Site: "office",
		SiteCA: caFile, Resolver: w.dns.Addr(), For: 20 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.agent.Close() })
	if err := w.agent.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, _, err := w.agent.ClaimCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.c.must("command claim agent "+code+" apikey "+w.key, "status ok 200")
	return w
}

// issue makes a 90-day certificate for ldap.corp.example with left to run.
func (w *siteWorld) issue(t *testing.T, left time.Duration) tls.Certificate {
	t.Helper()
	cert, err := w.ca.Issue(certtest.Lifetime(time.Now(), 90*24*time.Hour, left, "ldap.corp.example"))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// A certificate behind a site with 5 days left gets what a public one
// gets (alerts_test.go): "cert" gives the state by the configured
// thresholds (KEYCHEST_MONITOR_CRIT_MAX=3d here, so a warning, where the
// default 7d would say critical) and the days; the monitor's judge opens
// the same expiry finding, and the owner gets the same alert mail, with
// the account link; a renewed certificate gives the "resolved" mail. The
// central monitor never holds the target.
func TestSiteTargetFindingAndAlertMail(t *testing.T) {
	w := newSiteWorld(t, 5*24*time.Hour, func(c *Config) { c.MonitorCritMax = span(3 * 24 * time.Hour) })
	target := "ldap.corp.example:" + strconv.Itoa(w.target.Port())
	w.c.must("command add domain "+target+" apikey "+w.key+" site office", "status ok 200 domain "+target+" added behind site office")
	if err := w.agent.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	data := w.c.must("command cert domain "+target+" apikey "+w.key, "status ok 200")
	if !strings.HasPrefix(data, "state=warning ") || !strings.Contains(data, " days=4 ") || !strings.Contains(data, " finding=expiry ") ||
		!strings.Contains(data, " issuer=Corp_Internal_CA addresses=1 ") || !strings.HasSuffix(data, " class=- site=office revocation=none") {
		t.Fatalf("cert: %s", data)
	}
	alert := w.mail.Wait(t, 2, 15*time.Second)[1]
	if !strings.HasPrefix(alert.Header("Subject"), "KeyChest: 1 problem") || !strings.Contains(alert.Body(), "WARNING  "+target+"  expiry") ||
		!strings.Contains(alert.Body(), "certbot renew --dry-run") || !strings.HasPrefix(alert.Header("Message-Id"), "<outbox-") {
		t.Fatalf("alert mail: %q\n%s", alert.Header("Subject"), alert.Body())
	}
	code, page := get(t, link(t, alert.Body(), "account"))
	if code != 200 || !strings.Contains(page, `data-domain="`+target+`" data-site="office" data-state="warning"`) ||
		!strings.Contains(page, "site=office") || !strings.Contains(page, "expiry") {
		t.Fatalf("account page: %d\n%s", code, page)
	}
	if data := w.c.must("command list apikey "+w.key, "status ok 200 1 domain"); data != target+"@office" {
		t.Fatalf("list: %q", data)
	}
	if data := w.c.must("command status apikey "+w.key, "status ok 200"); !strings.Contains(data, " domains=1 ") ||
		!strings.HasSuffix(data, " problems=1") {
		t.Fatalf("status: %q", data)
	}
	if n := count(t, w.app, `SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE t.site_target IS NOT NULL AND f.kind = 'expiry' AND f.severity = 'warning' AND f.closed_at IS NULL
		AND f.mailed_severity = 'warning'`); n != 1 {
		t.Fatalf("open expiry findings on the site target: %d", n)
	}
	if n := count(t, w.app, `SELECT count(*) FROM mon_targets WHERE public`); n != 0 {
		t.Fatalf("the central monitor has %d targets", n)
	}
	// Had the central monitor leased the site's row, its probe (resolver
	// 127.0.0.1:1, no allowed private nets) would have left a failure.
	if n := count(t, w.app, `SELECT count(*) FROM mon_observations WHERE error_class IS NOT NULL`); n != 0 {
		t.Fatalf("%d failed observations: the central monitor probed the site's target", n)
	}

	w.target.Swap(w.issue(t, 80*24*time.Hour))
	w.c.must("command check domain "+target+" apikey "+w.key, "status ok 200 check queued")
	if err := w.agent.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	resolved := w.mail.Wait(t, 3, 15*time.Second)[2]
	if !strings.Contains(resolved.Header("Subject"), "resolved") || !strings.Contains(resolved.Body(), target+"  expiry") {
		t.Fatalf("resolved mail: %q\n%s", resolved.Header("Subject"), resolved.Body())
	}
	if data := w.c.must("command cert domain "+target+" apikey "+w.key, "status ok 200"); !strings.HasPrefix(data, "state=ok ") {
		t.Fatalf("cert after renewal: %s", data)
	}
	code, out, _ := cli(t, w.app.cfg.DatabaseURL, "digest", "--email", "owner@example.com", "--dry-run")
	if code != 0 || !strings.Contains(out, "1 certificate watched") || !strings.Contains(out, target) ||
		!strings.Contains(out, "renewed") || !strings.Contains(out, "expiry") {
		t.Fatalf("digest: %d\n%s", code, out)
	}
}

// An agent silent for KEYCHEST_AGENT_SILENT_AFTER (2 s here) opens an
// agent_silent finding, mailed to its owner like any other; its next call
// closes it, with a "resolved" mail.
func TestAgentSilentFindingMailed(t *testing.T) {
	w := newSiteWorld(t, 60*24*time.Hour, func(c *Config) { c.AgentSilentAfter = 2 * time.Second })
	id, err := agent.LoadIdentity(w.agent.Config().Dir)
	if err != nil {
		t.Fatal(err)
	}
	silent := w.mail.Wait(t, 2, 15*time.Second)[1]
	if !strings.HasPrefix(silent.Header("Subject"), "KeyChest: 1 problem") ||
		!strings.Contains(silent.Body(), "WARNING  agent "+id.ID+"  agent_silent") || !strings.Contains(silent.Body(), "systemctl status keychest-agent") {
		t.Fatalf("silent mail: %q\n%s", silent.Header("Subject"), silent.Body())
	}
	if n := count(t, w.app, `SELECT count(*) FROM mon_findings WHERE kind = 'agent_silent' AND closed_at IS NULL`); n != 1 {
		t.Fatalf("open agent_silent findings: %d", n)
	}
	if err := w.agent.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	resolved := w.mail.Wait(t, 3, 15*time.Second)[2]
	if !strings.Contains(resolved.Header("Subject"), "resolved") || !strings.Contains(resolved.Body(), "agent "+id.ID+"  agent_silent") {
		t.Fatalf("resolved mail: %q\n%s", resolved.Header("Subject"), resolved.Body())
	}
}
