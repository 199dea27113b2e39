// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

// twoServers opens two stores (two pools, as two servers have) on one
// database, and a pool to look at the rows.
func twoServers(t *testing.T) (a, b *store.Postgres, db *pgxpool.Pool) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	var s [2]*store.Postgres
	for i := range s {
		p, err := store.Open(context.Background(), url, 8)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		s[i] = p
	}
	return s[0], s[1], pool(t, url)
}

// pool is a pool on url for looking at the rows.
func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// race runs n commands at once, alternating between the two stores, and
// counts those refused by the limit; any other error fails the test.
func race(t *testing.T, a, b *store.Postgres, n int, run func(p *store.Postgres, i int) error) (refused int) {
	t.Helper()
	return raceWhile(t, a, b, n, func() {}, run)
}

// raceWhile is race, calling during once every command has started.
func raceWhile(t *testing.T, a, b *store.Postgres, n int, during func(), run func(p *store.Postgres, i int) error) (refused int) {
	t.Helper()
	var wg sync.WaitGroup
	var count atomic.Int32
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		p := a
		if i%2 == 1 {
			p = b
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := run(p, i)
			var lim *store.LimitError
			switch {
			case errors.As(err, &lim) && errors.Is(err, store.ErrRateLimited):
				count.Add(1)
			case err != nil:
				errs <- err
			}
		}(i)
	}
	during()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return int(count.Load())
}

func newKey(ipText string, perHour int) func(p *store.Postgres, i int) error {
	return func(p *store.Postgres, i int) error {
		k := ref(fmt.Sprintf("limit-key-%s-%06d", ipText, i))
		return p.CreateKey(context.Background(), store.NewKey{Key: k, IP: netip.MustParseAddr(ipText), MaxPerIPHour: perHour})
	}
}

// Racing new keys from one client through two servers: exactly the limit
// passes; another client and another /64 have their own.
func TestKeyLimitSharedExactly(t *testing.T) {
	a, b, db := twoServers(t)
	if refused := race(t, a, b, 40, newKey("198.51.100.1", 10)); refused != 30 {
		t.Fatalf("%d of 40 refused, want 30", refused)
	}
	if refused := race(t, a, b, 12, newKey("2001:db8:5:6::1", 4)); refused != 8 {
		t.Fatalf("IPv6: %d of 12 refused, want 8", refused)
	}
	if err := newKey("2001:db8:5:6:a:b:c:d", 4)(a, 99); !errors.Is(err, store.ErrRateLimited) {
		t.Fatalf("same /64: %v", err)
	}
	if err := newKey("2001:db8:5:7::1", 4)(b, 99); err != nil {
		t.Fatalf("another /64: %v", err)
	}
	var keys int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM api_keys`).Scan(&keys); err != nil || keys != 15 {
		t.Fatalf("%d keys stored (%v), want 15", keys, err)
	}
}

// A refused take says when the next token is due; the bucket refills
// evenly, so after that wait one more passes.
func TestKeyLimitRefills(t *testing.T) {
	a, b, db := twoServers(t)
	take := newKey("198.51.100.2", 10) // one token per 6 minutes
	for i := 0; i < 10; i++ {
		if err := take(a, i); err != nil {
			t.Fatal(err)
		}
	}
	var lim *store.LimitError
	if err := take(b, 10); !errors.As(err, &lim) || lim.Wait < 5*time.Minute || lim.Wait > 6*time.Minute ||
		lim.From() != "198.51.100.2" {
		t.Fatalf("11th key: %v", err)
	}
	// Seven minutes pass for the bucket.
	if _, err := db.Exec(context.Background(), `UPDATE rate_buckets SET at = at - interval '7 minutes'`); err != nil {
		t.Fatal(err)
	}
	if err := take(b, 11); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	if err := take(a, 12); !errors.Is(err, store.ErrRateLimited) {
		t.Fatalf("one token came back, two were taken: %v", err)
	}
}

// Claims share their limit across servers; a claim refused for another
// reason (here: the key belongs to another address) gives its token back.
func TestClaimLimitShared(t *testing.T) {
	a, b, _ := twoServers(t)
	ipC := netip.MustParseAddr("2001:db8:9::1")
	claim := func(p *store.Postgres, i int) error {
		_, err := p.ClaimKey(context.Background(), store.Claim{Key: ref(fmt.Sprintf("claim-limit-key-%04d", i)),
			Email: fmt.Sprintf("u%d@example.com", i), IP: ipC, Tokens: store.MailTokens{Confirm: fmt.Sprint("c", i), Block: fmt.Sprint("b", i), Revoke: fmt.Sprint("r", i)},
			MaxPerIPHour: 3})
		return err
	}
	if err := claim(a, 0); err != nil {
		t.Fatal(err)
	}
	_, err := b.ClaimKey(context.Background(), store.Claim{Key: ref("claim-limit-key-0000"), Email: "other@example.com",
		IP: ipC, MaxPerIPHour: 3})
	if !errors.Is(err, store.ErrKeyClaimed) {
		t.Fatalf("claim of another's key: %v", err)
	}
	if refused := race(t, a, b, 6, func(p *store.Postgres, i int) error { return claim(p, i+1) }); refused != 4 {
		t.Fatalf("%d of 6 refused, want 4 (3 tokens, one taken)", refused)
	}
}

// The sweep deletes only buckets that have refilled (last take over an
// hour ago).
func TestSweepFullBuckets(t *testing.T) {
	a, _, db := twoServers(t)
	for i, ipText := range []string{"198.51.100.3", "198.51.100.4"} {
		if err := newKey(ipText, 5)(a, i); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	if _, err := db.Exec(ctx, `UPDATE rate_buckets SET at = at - interval '61 minutes' WHERE client = '198.51.100.3'`); err != nil {
		t.Fatal(err)
	}
	if err := a.SweepFullBuckets(); err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, _ := db.Query(ctx, `SELECT host(client) FROM rate_buckets`)
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		left = append(left, s)
	}
	if rows.Err() != nil || len(left) != 1 || left[0] != "198.51.100.4" {
		t.Fatalf("left %v (%v)", left, rows.Err())
	}
}

// The claim's tail (tokens, outbox row, audit) is one round trip; a
// failure in it still fails the claim and leaves nothing of it behind.
func TestClaimTailFailsWhole(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	claim := func(i int) error {
		_, err := p.ClaimKey(ctx, store.Claim{Key: ref(fmt.Sprintf("claim-tail-key-%04d", i)),
			Email: fmt.Sprintf("t%d@example.com", i), IP: ip, Tokens: store.MailTokens{Confirm: "same", Block: "same-b"}})
		return err
	}
	if err := claim(1); err != nil {
		t.Fatal(err)
	}
	if err := claim(2); !errors.Is(err, store.ErrRefused) {
		t.Fatalf("claim reusing a token: %v, want ErrRefused", err)
	}
	var outbox, accounts, audit int
	err := pool(t, url).QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM accounts),
		(SELECT count(*) FROM audit WHERE action = 'key.claim')`).Scan(&outbox, &accounts, &audit)
	if err != nil || outbox != 1 || accounts != 1 || audit != 1 {
		t.Fatalf("outbox %d, accounts %d, audit %d (%v); want 1 each", outbox, accounts, audit, err)
	}
}
