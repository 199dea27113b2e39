// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/certtest"
)

// A site's pushed CAs are trusted for that site's relays only: the kept
// pools of two sites, and the base they share, stay apart.
func TestSitePoolsKeepSitesApart(t *testing.T) {
	now := time.Now()
	caA, errA := certtest.NewCA("site A root", now)
	caB, errB := certtest.NewCA("site B root", now)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	leafA, err := caA.Issue(certtest.Lifetime(now, 90*24*time.Hour, 60*24*time.Hour, "ldap.a.example"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(leafA.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	trusts := func(pool *x509.CertPool) bool {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now})
		return err == nil
	}
	var ps pools
	base := x509.NewCertPool()
	for round := 0; round < 2; round++ { // made, then kept
		if !trusts(ps.get(base, []*x509.Certificate{caA.Cert})) {
			t.Fatalf("round %d: site A's pool does not trust A's leaf", round)
		}
		if trusts(ps.get(base, []*x509.Certificate{caB.Cert})) {
			t.Fatalf("round %d: site B's pool trusts A's leaf", round)
		}
		if trusts(base) {
			t.Fatalf("round %d: the shared base took A's root", round)
		}
	}
	if len(ps.m) != 2 {
		t.Fatalf("%d pools kept for two sites", len(ps.m))
	}
}
