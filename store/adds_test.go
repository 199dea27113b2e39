// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
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

// Racing adds for one key through two servers, in one batch each at the
// same time: exactly the cap is stored, each add hears "added" or "limit
// reached", and re-adding a stored domain at the cap says it exists. (It
// fails when the batches do not lock the key: both read the same count.)
func TestRacingAddsHoldTheCap(t *testing.T) {
	a, b, db := twoServers(t)
	ctx := context.Background()
	k := createdKey(t, a, "racing-cap-0123456789")
	var mu sync.Mutex
	added := 0
	refused := raceInOneBatchEach(t, a, b, db, 60, func(p *store.Postgres, i int) error {
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
	rows, count := keyRows(t, db, k)
	if added != 10 || refused != 50 || rows != 10 || count != 10 {
		t.Fatalf("%d added, %d refused, %d rows, domain_count %d; want 10, 50, 10, 10", added, refused, rows, count)
	}
	var stored string
	if err := db.QueryRow(ctx, `SELECT name FROM domains WHERE name LIKE 'r%' LIMIT 1`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if res, err := b.AddDomain(ctx, store.NewDomain{Key: k, Name: stored, Port: 443, MaxPerKey: 10}); err != nil ||
		res.Outcome != store.DomainExists {
		t.Fatalf("re-add at the cap: %+v, %v", res, err)
	}
}

// Two servers adding the same few domains for one key, in one batch each
// at the same time: every add is answered (added or exists, never an
// error), each domain is added once, and the key's count matches its rows.
func TestRacingSameDomainsCountedOnce(t *testing.T) {
	a, b, db := twoServers(t)
	ctx := context.Background()
	k := createdKey(t, a, "racing-same-0123456789")
	var added atomic.Int32
	raceInOneBatchEach(t, a, b, db, 80, func(p *store.Postgres, i int) error {
		res, err := p.AddDomain(ctx, store.NewDomain{Key: k, Name: fmt.Sprintf("s%d.example", i%8), Port: 443, MaxPerKey: 100})
		if err == nil && res.Outcome == store.DomainAdded {
			added.Add(1)
		}
		return err
	})
	rows, count := keyRows(t, db, k)
	if added.Load() != 8 || rows != 8 || count != 8 {
		t.Fatalf("%d added, %d rows, domain_count %d; want 8 each", added.Load(), rows, count)
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

// raceInOneBatchEach is race with the n commands in one batch per server,
// both sent at once, so that they meet in PostgreSQL. Each server's writer
// is first held on a batch of its own (an add for a key of its own, whose
// row a transaction of the test has locked) until all n commands are
// queued behind it.
func raceInOneBatchEach(t *testing.T, a, b *store.Postgres, db *pgxpool.Pool, n int, run func(p *store.Postgres, i int) error) (refused int) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	plugged := make(chan error, 2)
	for i, p := range []*store.Postgres{a, b} {
		plug := createdKey(t, p, fmt.Sprintf("plug-key-%d-0123456789", i))
		if _, err := tx.Exec(ctx, `SELECT 1 FROM api_keys WHERE key_hash = $1 FOR UPDATE`, plug.Hash[:]); err != nil {
			t.Fatal(err)
		}
		go func() {
			_, err := p.AddDomain(ctx, store.NewDomain{Key: plug, Name: "plug.example", Port: 443, MaxPerKey: 10})
			plugged <- err
		}()
	}
	waitFor(t, "both writers held on a locked key", func() bool {
		var waiting int
		db.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&waiting)
		return waiting == 2
	})
	refused = raceWhile(t, a, b, n, func() {
		waitFor(t, "every add queued", func() bool { return a.WritesWaiting()+b.WritesWaiting() == n })
		tx.Rollback(ctx)
	}, run)
	for range 2 {
		if err := <-plugged; err != nil {
			t.Fatal(err)
		}
	}
	return refused
}

// keyRows is the number of domains rows of k, and its domain_count.
func keyRows(t *testing.T, db *pgxpool.Pool, k store.KeyRef) (rows, count int) {
	t.Helper()
	err := db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM domains WHERE api_key_id = k.id), k.domain_count
		FROM api_keys k WHERE k.key_hash = $1`, k.Hash[:]).Scan(&rows, &count)
	if err != nil {
		t.Fatal(err)
	}
	return rows, count
}

// waitFor polls cond until it holds, and fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}
