// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/slapdtest"
	"github.com/keychest/keychest-lined/monitor"
)

// A claimed agent reads 2,000 certificates (and a CA's) from Debian's
// slapd with a paged search and posts them; the service stores each by
// fingerprint with its DN, and the one that expires in 5 days judges
// critical by the monitor's thresholds.
func TestLDAPCertificatesStored(t *testing.T) {
	s := newAgentSide(t)
	entries := slapdtest.People(t, 2000)
	url := slapdtest.Start(t, entries)
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "ldap.pw"), []byte(slapdtest.Password), 0o600)
	os.WriteFile(filepath.Join(dir, agent.DiscoverFile),
		[]byte("ldap "+url+" base "+slapdtest.Base+" bind "+slapdtest.Agent+" ldap.pw\n"), 0o600)
	open := func() *agent.Agent {
		os.Remove(filepath.Join(dir, "discover.stamp"))
		a, err := agent.Open(agent.Config{Dir: dir, Server: s.srv.URL, Version: "1", UID: os.Getuid(), Site: "office", For: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	a := open()
	ctx := context.Background()
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	claimAgent(t, s, a)
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.count(t, `SELECT count(*) FROM discovered_certs WHERE site = 'office' AND gone_at IS NULL`); n != 2001 {
		t.Fatalf("stored %d certificates", n)
	}
	certs, err := s.st.AllDiscoveredCerts(ctx)
	if err != nil || len(certs) != 2001 {
		t.Fatalf("%d %v", len(certs), err)
	}
	first := certs[0] // soonest expiry first
	if first.DN != "cn=user0000,ou=people,"+slapdtest.Base || first.Email != "owner@example.com" || len(first.Fingerprint) != 32 ||
		monitor.DefaultPolicy().ExpirySeverity(first.NotBefore, first.NotAfter, time.Now()) != finding.Critical {
		t.Fatalf("the expiring certificate: %+v", first)
	}
}
