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

// One batch holding repeats, a key at its cap and an unknown key: each add
// gets its own outcome from the one set-based statement, the first of two
// equal adds is the one that adds, and the cap counts the batch's own rows.
func TestAddsInOneBatch(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	k := createdKey(t, p, "set-outcomes-0123456789")
	if _, err := p.AddDomain(ctx, store.NewDomain{Key: k, Name: "old.example", Port: 443, MaxPerKey: 3}); err != nil {
		t.Fatal(err)
	}
	names := []string{"a.example", "a.example", "old.example", "b.example", "c.example", "b.example", "old.example"}
	var adds []store.NewDomain
	for _, n := range names {
		adds = append(adds, store.NewDomain{Key: k, Name: n, Port: 443, MaxPerKey: 3})
	}
	adds = append(adds, store.NewDomain{Key: ref("never-issued-0123456789"), Name: "a.example", Port: 443, MaxPerKey: 3})
	results, errs, batches := p.AddTogether(adds)
	want := []struct {
		out store.AddOutcome
		err error
	}{
		{store.DomainAdded, nil}, {store.DomainExists, nil}, {store.DomainExists, nil}, {store.DomainAdded, nil},
		{0, store.ErrDomainLimit}, {store.DomainExists, nil}, {store.DomainExists, nil}, {0, store.ErrUnknownKey},
	}
	for i, w := range want {
		if results[i].Outcome != w.out || !errors.Is(errs[i], w.err) {
			t.Errorf("add %d (%s): %v, %v; want %v, %v", i, adds[i].Name, results[i].Outcome, errs[i], w.out, w.err)
		}
	}
	if batches != 1 {
		t.Errorf("%d batches, want 1", batches)
	}
	if st, err := p.KeyStatus(ctx, k); err != nil || st.Domains != 3 {
		t.Errorf("status counts %d domains (%v), want 3", st.Domains, err)
	}
}

// Racing adds for one key through two servers: exactly the cap is stored,
// each add hears "added" or "limit reached", and re-adding a stored domain
// at the cap says it exists.
func TestRacingAddsHoldTheCap(t *testing.T) {
	a, b, db := twoServers(t)
	ctx := context.Background()
	k := ref("racing-cap-0123456789")
	if err := a.CreateKey(ctx, store.NewKey{Key: k, IP: ip}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	added := 0
	refused := race(t, a, b, 60, func(p *store.Postgres, i int) error {
		res, err := p.AddDomain(ctx, store.NewDomain{Key: k, Name: fmt.Sprintf("r%d.example", i), Port: 443, MaxPerKey: 10})
		if errors.Is(err, store.ErrDomainLimit) {
			return &store.LimitError{} // counted as refused by race
		}
		if err == nil && res.Outcome == store.DomainAdded {
			mu.Lock()
			added++
			mu.Unlock()
		}
		return err
	})
	var rows int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM domains`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if added != 10 || refused != 50 || rows != 10 {
		t.Fatalf("%d added, %d refused, %d rows; want 10, 50, 10", added, refused, rows)
	}
	var stored string
	if err := db.QueryRow(ctx, `SELECT name FROM domains LIMIT 1`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if res, err := b.AddDomain(ctx, store.NewDomain{Key: k, Name: stored, Port: 443, MaxPerKey: 10}); err != nil ||
		res.Outcome != store.DomainExists {
		t.Fatalf("re-add at the cap: %+v, %v", res, err)
	}
}

// An add is audited by its own row: no audit insert, and the view
// audit_trail shows it as a "domain.add" event; its removal's entry keeps
// when and from where it was added.
func TestAddAuditedByItsRow(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	k := createdKey(t, p, "audit-key-0123456789")
	if _, err := p.AddDomain(ctx, store.NewDomain{Key: k, Name: "a.example", Port: 443, IP: ip, MaxPerKey: 9}); err != nil {
		t.Fatal(err)
	}
	db := pool(t, url)
	var inAudit, inTrail int
	err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit WHERE action = 'domain.add'),
		(SELECT count(*) FROM audit_trail WHERE action = 'domain.add' AND key_prefix = $1 AND remote_ip = $2
		 AND detail = '{"domain": "a.example", "port": 443}')`, k.Prefix, ip).Scan(&inAudit, &inTrail)
	if err != nil || inAudit != 0 || inTrail != 1 {
		t.Fatalf("audit rows %d, trail rows %d (%v); want 0, 1", inAudit, inTrail, err)
	}
	if ok, err := p.RemoveDomain(ctx, store.DomainRef{Key: k, Name: "a.example", Port: 443, IP: ip}); !ok || err != nil {
		t.Fatalf("remove: %v, %v", ok, err)
	}
	var addedFrom string
	err = db.QueryRow(ctx, `SELECT detail->>'added_ip' FROM audit_trail WHERE action = 'domain.remove'
		AND (detail->>'added_at')::timestamptz <= at`).Scan(&addedFrom)
	if err != nil || addedFrom != ip.String() {
		t.Fatalf("removal keeps added_ip %q (%v), want %s", addedFrom, err, ip)
	}
}

// api_keys.last_added_at says when the key last added a domain: unset for
// a new key, set by an add, unchanged by an add that found its domain.
func TestLastAddedAt(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	k := createdKey(t, p, "last-added-0123456789")
	db := pool(t, url)
	at := func() *time.Time {
		var v *time.Time
		if err := db.QueryRow(ctx, `SELECT last_added_at FROM api_keys`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := at(); v != nil {
		t.Fatalf("new key: last_added_at %v", v)
	}
	add := store.NewDomain{Key: k, Name: "a.example", Port: 443, MaxPerKey: 9}
	if _, err := p.AddDomain(ctx, add); err != nil {
		t.Fatal(err)
	}
	first := at()
	if _, err := p.AddDomain(ctx, add); err != nil {
		t.Fatal(err)
	}
	if again := at(); first == nil || again == nil || !again.Equal(*first) {
		t.Fatalf("last_added_at %v, then %v after finding the domain", first, again)
	}
}
