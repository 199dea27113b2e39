// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

func names(list []store.Discovered) string {
	s := ""
	for _, d := range list {
		s += fmt.Sprintf("%s:%d/%s/%d", d.Name, d.Port, d.Site, d.Addresses)
		if d.Gone != nil {
			s += "/gone"
		}
		s += " "
	}
	return s
}

func batch(w *agentWorld, auto bool, list ...string) store.DiscoveredBatch {
	b := store.DiscoveredBatch{AgentKey: w.agent, Source: "axfr:corp.example", AutoAdd: auto}
	for _, n := range list {
		b.Candidates = append(b.Candidates, store.DiscoveredName{Name: n, Port: 443, Addresses: 1})
	}
	return b
}

func TestDiscoveredProposedGoneIgnored(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	if _, err := w.p.StoreDiscovered(ctx, batch(w, false, "a.corp.example")); !errors.Is(err, store.ErrAgentNotClaimed) {
		t.Fatalf("before the claim: %v", err)
	}
	if _, err := w.p.StoreDiscovered(ctx, store.DiscoveredBatch{AgentKey: ref("agt-unknown-0123456789")}); !errors.Is(err, store.ErrAgentUnknown) {
		t.Fatalf("unknown agent: %v", err)
	}
	w.setCode(t, "AAAAA-BBBBB", time.Hour)
	if _, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 10); err != nil {
		t.Fatal(err)
	}
	c, err := w.p.StoreDiscovered(ctx, batch(w, false, "a.corp.example", "b.corp.example", "c.corp.example"))
	if err != nil || c != (store.DiscoveredCounts{Proposed: 3}) {
		t.Fatalf("first batch: %+v %v", c, err)
	}
	// The zone changed: c went, d came.
	c, err = w.p.StoreDiscovered(ctx, batch(w, false, "a.corp.example", "b.corp.example", "d.corp.example"))
	if err != nil || c != (store.DiscoveredCounts{Proposed: 1, Seen: 2, Gone: 1}) {
		t.Fatalf("second batch: %+v %v", c, err)
	}
	list, err := w.p.AccountDiscovered(ctx, ref("owner-key-0123456789"))
	want := "a.corp.example:443/office/1 b.corp.example:443/office/1 c.corp.example:443/office/1/gone d.corp.example:443/office/1 "
	if err != nil || names(list) != want || list[0].Source != "axfr:corp.example" || list[0].FirstSeen.IsZero() {
		t.Fatalf("list: %q %v", names(list), err)
	}
	// A stranger's key sees nothing and ignores nothing of the owner's.
	if l, err := w.p.AccountDiscovered(ctx, ref("stranger-key-0123456")); err != nil || len(l) != 0 {
		t.Errorf("stranger lists %v %v", names(l), err)
	}
	if ok, err := w.p.IgnoreDiscovered(ctx, ref("stranger-key-0123456"), "a.corp.example", 443); ok || err != nil {
		t.Errorf("stranger ignored: %v %v", ok, err)
	}
	if _, err := w.p.AccountDiscovered(ctx, ref("pending-key-01234567")); !errors.Is(err, store.ErrAgentOwner) {
		t.Errorf("unconfirmed account lists: %v", err)
	}
	// Ignored for good: not listed, even when seen again; accepted: not listed.
	if ok, err := w.p.IgnoreDiscovered(ctx, ref("owner-key-0123456789"), "a.corp.example", 443); !ok || err != nil {
		t.Fatalf("ignore: %v %v", ok, err)
	}
	if ok, _ := w.p.IgnoreDiscovered(ctx, ref("owner-key-0123456789"), "a.corp.example", 443); ok {
		t.Error("ignored twice")
	}
	if _, err := w.p.AddSiteTarget(ctx, store.NewSiteTarget{Key: ref("owner-key-0123456789"), Site: "office", Name: "b.corp.example", Port: 443, IP: ip}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.StoreDiscovered(ctx, batch(w, false, "a.corp.example", "b.corp.example", "d.corp.example")); err != nil {
		t.Fatal(err)
	}
	list, _ = w.p.AccountDiscovered(ctx, ref("owner-key-0123456789"))
	if got := names(list); got != "c.corp.example:443/office/1/gone d.corp.example:443/office/1 " {
		t.Errorf("after ignore and add: %q", got)
	}
	all, err := w.p.AllDiscovered(ctx)
	if err != nil || len(all) != 4 || all[0].Email != "owner@example.com" || all[0].Ignored == nil || !all[1].Added {
		t.Errorf("operator's list: %+v %v", all, err)
	}
}

func TestDiscoveredAutoAdd(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	w.setCode(t, "AAAAA-BBBBB", time.Hour)
	if _, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 10); err != nil {
		t.Fatal(err)
	}
	w.p.StoreDiscovered(ctx, batch(w, false, "x.corp.example"))
	w.p.IgnoreDiscovered(ctx, ref("owner-key-0123456789"), "x.corp.example", 443)
	c, err := w.p.StoreDiscovered(ctx, batch(w, true, "x.corp.example", "y.corp.example", "z.corp.example"))
	if err != nil || c.Added != 2 {
		t.Fatalf("auto_add: %+v %v", c, err)
	}
	var n int
	w.db.QueryRow(ctx, `SELECT count(*) FROM agent_targets t JOIN accounts a ON a.id = t.account_id
		WHERE a.email = 'owner@example.com' AND t.site = 'office' AND t.name IN ('y.corp.example', 'z.corp.example')`).Scan(&n)
	if n != 2 {
		t.Errorf("%d targets added behind the site", n)
	}
	if c, _ := w.p.StoreDiscovered(ctx, batch(w, true, "y.corp.example", "z.corp.example")); c.Added != 0 {
		t.Errorf("added twice: %+v", c)
	}
	if l, _ := w.p.AccountDiscovered(ctx, ref("owner-key-0123456789")); len(l) != 0 {
		t.Errorf("added ones still proposed: %s", names(l))
	}
}

func TestDiscoveredCertsGone(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	cert := func(dn string, fp byte) store.DiscoveredCert {
		return store.DiscoveredCert{DN: dn, Attribute: "userCertificate", Fingerprint: bytes32(fp), Subject: dn,
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 24 * time.Hour)}
	}
	b := store.CertBatch{AgentKey: w.agent, Source: "ldap:ldap://x dc=x", Certs: []store.DiscoveredCert{cert("cn=a", 1), cert("cn=b", 2)}}
	if _, err := w.p.StoreDiscoveredCerts(ctx, b); !errors.Is(err, store.ErrAgentNotClaimed) {
		t.Fatalf("before the claim: %v", err)
	}
	w.setCode(t, "AAAAA-BBBBB", time.Hour)
	if _, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 10); err != nil {
		t.Fatal(err)
	}
	if c, err := w.p.StoreDiscoveredCerts(ctx, b); err != nil || c != (store.CertCounts{New: 2}) {
		t.Fatalf("first: %+v %v", c, err)
	}
	// b renewed (a new fingerprint), a unchanged.
	b.Certs = []store.DiscoveredCert{cert("cn=a", 1), cert("cn=b", 3)}
	if c, err := w.p.StoreDiscoveredCerts(ctx, b); err != nil || c != (store.CertCounts{New: 1, Seen: 1, Gone: 1}) {
		t.Fatalf("second: %+v %v", c, err)
	}
	all, err := w.p.AllDiscoveredCerts(ctx)
	if err != nil || len(all) != 2 || all[0].Email != "owner@example.com" || !all[0].NotAfter.Equal(now.Add(5*24*time.Hour)) {
		t.Fatalf("list: %+v %v", all, err)
	}
}

func bytes32(b byte) []byte {
	out := make([]byte, 32)
	out[0] = b
	return out
}
