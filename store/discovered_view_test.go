// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// pageOf reads the account page of email through a page link made for
// the test.
func (w *agentWorld) pageOf(t *testing.T, email string) store.AccountView {
	t.Helper()
	ctx := context.Background()
	raw := "page-of-" + email
	hash := store.HashToken(raw)
	if _, err := w.db.Exec(ctx, `INSERT INTO account_links (hash, account_id) SELECT $1, id FROM accounts WHERE email = $2
		ON CONFLICT DO NOTHING`, hash[:], email); err != nil {
		t.Fatal(err)
	}
	v, err := w.p.AccountPage(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// discoveredWorld has the owner's agent propose a, b, c (c then gone, a
// ignored, b added, d new) and the stranger's agent propose s.
func discoveredWorld(t *testing.T) *agentWorld {
	t.Helper()
	w := newAgentWorld(t)
	ctx := context.Background()
	w.setCode(t, "AAAAA-BBBBB", time.Hour)
	if _, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 10); err != nil {
		t.Fatal(err)
	}
	owner := ref("owner-key-0123456789")
	for _, b := range []store.DiscoveredBatch{
		batch(w, false, "a.corp.example", "b.corp.example", "c.corp.example", "e.corp.example"),
		batch(w, false, "a.corp.example", "b.corp.example", "d.corp.example", "e.corp.example"),
	} {
		if _, err := w.p.StoreDiscovered(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := w.p.IgnoreDiscovered(ctx, owner, "a.corp.example", 443); !ok || err != nil {
		t.Fatalf("ignore: %v %v", ok, err)
	}
	if _, err := w.p.AddSiteTarget(ctx, store.NewSiteTarget{Key: owner, Site: "office", Name: "b.corp.example", Port: 443, IP: ip}); err != nil {
		t.Fatal(err)
	}
	stranger := w.claimedAgent(t, "agt-s-0123456789abc", "office", "stranger@example.com")
	sb := store.DiscoveredBatch{AgentKey: stranger, Source: "axfr:other.example",
		Candidates: []store.DiscoveredName{{Name: "s.other.example", Port: 8443, Addresses: 2}}}
	if _, err := w.p.StoreDiscovered(ctx, sb); err != nil {
		t.Fatal(err)
	}
	return w
}

// The account page shows the account's open proposals (gone ones marked,
// ignored and added ones left out) and none of another account's.
func TestAccountPageShowsOwnProposalsOnly(t *testing.T) {
	w := discoveredWorld(t)
	v := w.pageOf(t, "owner@example.com")
	want := "d.corp.example:443/office/1 e.corp.example:443/office/1 c.corp.example:443/office/1/gone "
	if got := names(v.Proposals); got != want || v.ProposalsTotal != 3 {
		t.Fatalf("owner's page: %q (total %d), want %q", got, v.ProposalsTotal, want)
	}
	if p := v.Proposals[0]; p.Source != "axfr:corp.example" || p.FirstSeen.IsZero() || p.Email != "" {
		t.Errorf("owner's proposal: %+v", p)
	}
	s := w.pageOf(t, "stranger@example.com")
	if got := names(s.Proposals); got != "s.other.example:8443/office/2 " || s.ProposalsTotal != 1 {
		t.Errorf("stranger's page: %q (total %d)", got, s.ProposalsTotal)
	}
}

// The digest counts the account's open proposals first seen in its week:
// not older ones, not ignored or added ones, not another account's.
func TestDigestCountsThisWeeksNewProposals(t *testing.T) {
	w := discoveredWorld(t)
	ctx := context.Background()
	if _, err := w.db.Exec(ctx, `UPDATE discovered SET first_seen = now() - interval '8 days' WHERE name = 'e.corp.example'`); err != nil {
		t.Fatal(err)
	}
	d, err := w.p.DigestFor(ctx, "owner@example.com")
	if err != nil || d.NewProposals != 2 { // c (gone, still a proposal) and d
		t.Fatalf("owner's digest: %d new proposals, %v", d.NewProposals, err)
	}
	if _, err := w.db.Exec(ctx, `UPDATE discovered SET first_seen = now() - interval '8 days'`); err != nil {
		t.Fatal(err)
	}
	if d, err := w.p.DigestFor(ctx, "owner@example.com"); err != nil || d.NewProposals != 0 {
		t.Fatalf("owner's digest after the week: %d new proposals, %v", d.NewProposals, err)
	}
}

// The page shows at most MaxPageProposals, live ones first, and counts
// them all.
func TestAccountPageCapsProposals(t *testing.T) {
	w := discoveredWorld(t)
	_, err := w.db.Exec(context.Background(), `INSERT INTO discovered (account_id, site, name, port, source, addresses, agent_id)
		SELECT a.account_id, 'office', 'n' || i || '.corp.example', 443, 'axfr:corp.example', 1, a.id
		FROM agents a, generate_series(1, $1::int) i WHERE a.key_hash = $2`, store.MaxPageProposals, w.agent.Hash[:])
	if err != nil {
		t.Fatal(err)
	}
	v := w.pageOf(t, "owner@example.com")
	if len(v.Proposals) != store.MaxPageProposals || v.ProposalsTotal != store.MaxPageProposals+3 {
		t.Fatalf("%d shown of %d", len(v.Proposals), v.ProposalsTotal)
	}
	for _, p := range v.Proposals {
		if p.Gone != nil {
			t.Fatalf("a gone proposal shown before live ones: %s", p.Name)
		}
	}
}
