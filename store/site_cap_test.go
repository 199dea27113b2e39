// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// claimedWorld is an agentWorld whose agent (site office) is the owner's.
func claimedWorld(t *testing.T) *agentWorld {
	t.Helper()
	w := newAgentWorld(t)
	w.setCode(t, "AAAAA-BBBBB", time.Hour)
	if _, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 10); err != nil {
		t.Fatal(err)
	}
	return w
}

// siteAdd puts name:443 behind the owner's site office, under cap.
func (w *agentWorld) siteAdd(name string, cap int) (store.AddOutcome, error) {
	return w.p.AddSiteTarget(context.Background(), store.NewSiteTarget{Key: ref("owner-key-0123456789"), Site: "office",
		Name: name, Port: 443, IP: ip, MaxPerKey: cap})
}

// publicAdd adds name:443 as a public domain of the owner's key, under cap.
func (w *agentWorld) publicAdd(name string, cap int) (store.AddResult, error) {
	return w.p.AddDomain(context.Background(), store.NewDomain{Key: ref("owner-key-0123456789"), Name: name, Port: 443,
		IP: ip, MaxPerKey: cap})
}

// held counts the owner key's public domains and targets behind sites.
func (w *agentWorld) held(t *testing.T) (public, site int) {
	t.Helper()
	k := ref("owner-key-0123456789")
	err := w.db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM domains WHERE api_key_id = k.id),
			(SELECT count(*) FROM agent_targets WHERE api_key_id = k.id)
		FROM api_keys k WHERE k.key_hash = $1`, k.Hash[:]).Scan(&public, &site)
	if err != nil {
		t.Fatal(err)
	}
	return public, site
}

// One cap per key: its public domains and its targets behind sites count
// together, whichever way the key adds.
func TestSiteTargetsShareTheKeysCap(t *testing.T) {
	w := claimedWorld(t)
	for _, n := range []string{"a.example", "b.example"} {
		if _, err := w.publicAdd(n, 3); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := w.siteAdd("one.corp.example", 3); err != nil || out != store.DomainAdded {
		t.Fatalf("third name, behind a site: %v %v", out, err)
	}
	if _, err := w.siteAdd("two.corp.example", 3); !errors.Is(err, store.ErrDomainLimit) {
		t.Fatalf("fourth name behind a site: %v", err)
	}
	if _, err := w.publicAdd("c.example", 3); !errors.Is(err, store.ErrDomainLimit) {
		t.Fatalf("fourth name, public: %v", err)
	}
	if out, err := w.siteAdd("one.corp.example", 3); err != nil || out != store.DomainExists {
		t.Fatalf("re-add at the cap: %v %v", out, err)
	}
	if _, err := w.siteAdd("three.corp.example", 0); err != nil {
		t.Fatalf("no cap: %v", err)
	}
	if _, err := w.p.AddSiteTarget(context.Background(), store.NewSiteTarget{Key: ref("owner-key-0123456789"), Site: "elsewhere",
		Name: "x.corp.example", Port: 443, MaxPerKey: 100}); !errors.Is(err, store.ErrNoSite) {
		t.Fatalf("a site of no agent: %v", err)
	}
}

// Public adds and adds behind a site of one key, racing: the key holds
// exactly its cap.
func TestRacingSiteAndPublicAddsHoldTheCap(t *testing.T) {
	w := claimedWorld(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	added, refused := 0, 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			var ok bool
			if i%2 == 0 {
				var res store.AddResult
				res, err = w.publicAdd(fmt.Sprintf("p%d.example", i), 10)
				ok = res.Outcome == store.DomainAdded
			} else {
				var out store.AddOutcome
				out, err = w.siteAdd(fmt.Sprintf("s%d.corp.example", i), 10)
				ok = out == store.DomainAdded
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, store.ErrDomainLimit):
				refused++
			case err != nil:
				t.Error(err)
			case ok:
				added++
			}
		}()
	}
	wg.Wait()
	public, site := w.held(t)
	if added != 10 || refused != 30 || public+site != 10 {
		t.Fatalf("%d added, %d refused, %d public + %d behind sites; want 10, 30, 10 held", added, refused, public, site)
	}
}

// auto_add adds through the account's oldest key up to its cap (its
// public domains counted); the rest stay proposals and are counted as left.
func TestDiscoveredAutoAddHeldToTheKeysCap(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	if _, err := w.publicAdd("a.example", 3); err != nil {
		t.Fatal(err)
	}
	b := batch(w, true, "w.corp.example", "x.corp.example", "y.corp.example", "z.corp.example")
	b.MaxPerKey = 3
	c, err := w.p.StoreDiscovered(ctx, b)
	if err != nil || c.Added != 2 || c.Left != 2 {
		t.Fatalf("auto_add at the cap: %+v %v", c, err)
	}
	if public, site := w.held(t); public != 1 || site != 2 {
		t.Errorf("%d public, %d behind sites; want 1, 2", public, site)
	}
	if l, _ := w.p.AccountDiscovered(ctx, ref("owner-key-0123456789")); names(l) != "y.corp.example:443/office/1 z.corp.example:443/office/1 " {
		t.Errorf("left as proposals: %q", names(l))
	}
	if c, err := w.p.StoreDiscovered(ctx, b); err != nil || c.Added != 0 || c.Left != 2 {
		t.Errorf("again at the cap: %+v %v", c, err)
	}
}
