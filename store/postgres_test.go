// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

func open(t *testing.T) (*store.Postgres, string) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	p, err := store.Open(context.Background(), url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, url
}

func ref(key string) store.KeyRef {
	return store.KeyRef{Hash: sha256.Sum256([]byte(key)), Prefix: key[:8]}
}

var ip = netip.MustParseAddr("2001:db8::7")

// createdKey registers key as a server key (from ip) and returns its reference.
func createdKey(t *testing.T, p *store.Postgres, key string) store.KeyRef {
	t.Helper()
	k := ref(key)
	if err := p.CreateKey(context.Background(), store.NewKey{Key: k, IP: ip}); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMigrateAgainIsHarmless(t *testing.T) {
	_, url := open(t)
	var first int32
	for i := 0; i < 2; i++ {
		v, err := store.Migrate(context.Background(), url)
		if err != nil || v < 1 || (i > 0 && v != first) {
			t.Fatalf("run %d: version %d (first %d), %v", i, v, first, err)
		}
		first = v
	}
}

func TestAddDomainOutcomes(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	k := createdKey(t, p, "server-key-0123456789")
	add := func(name string) (store.AddOutcome, error) {
		res, err := p.AddDomain(ctx, store.NewDomain{Key: k, Name: name, Port: 443, IP: ip, MaxPerKey: 1})
		return res.Outcome, err
	}
	steps := []struct {
		name string
		out  store.AddOutcome
		err  error
	}{
		{"a.example", store.DomainAdded, nil},
		{"a.example", store.DomainExists, nil},
		{"b.example", 0, store.ErrDomainLimit},
	}
	for _, s := range steps {
		out, err := add(s.name)
		if out != s.out || !errors.Is(err, s.err) {
			t.Fatalf("add %s: %v, %v; want %v, %v", s.name, out, err, s.out, s.err)
		}
	}
	_, err := p.AddDomain(ctx, store.NewDomain{Key: ref("never-issued-0123456789"), Name: "a.example", Port: 443, MaxPerKey: 9})
	if !errors.Is(err, store.ErrUnknownKey) {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestClaimOutcomes(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	claim := func(key, email string) (store.ClaimOutcome, error) {
		return p.ClaimKey(ctx, store.Claim{Key: ref(key), Email: email, IP: ip,
			Tokens:         store.MailTokens{Confirm: key + "c", Block: key + "b", Revoke: key + "r", Approve: key + "a"},
			MaxMailsPerDay: 10, MaxUnconfirmedKeys: 10})
	}
	steps := []struct {
		key, email string
		out        store.ClaimOutcome
		err        error
	}{
		{"first-key-0123456789", "a@example.com", store.ClaimNewAccount, nil},
		{"first-key-0123456789", "a@example.com", store.ClaimUnchanged, nil},
		{"second-key-0123456789", "a@example.com", store.ClaimExistingAccount, nil},
		{"first-key-0123456789", "b@example.com", 0, store.ErrKeyClaimed},
	}
	for _, s := range steps {
		out, err := claim(s.key, s.email)
		if out != s.out || !errors.Is(err, s.err) {
			t.Fatalf("claim %s %s: %v, %v; want %v, %v", s.key, s.email, out, err, s.out, s.err)
		}
	}
}

func TestPingDown(t *testing.T) {
	p, err := store.Open(context.Background(), "postgres://x@127.0.0.1:1/x?connect_timeout=1", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ping(context.Background()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping: %v", err)
	}
}

// Adds of shared domains to one key from many goroutines: group-commit
// batches must not deadlock (each statement locks the key row first).
func TestConcurrentAddsDoNotDeadlock(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	k := createdKey(t, p, "deadlock-key-0123456789")
	errs := make(chan error, 16*40)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				_, err := p.AddDomain(ctx, store.NewDomain{Key: k, Name: fmt.Sprintf("d%d.example", (g+i)%8),
					Port: 443, IP: ip, MaxPerKey: 1000})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Concurrent claims of new keys for one existing account respect the
// account's mail limit.
func TestConcurrentClaimsRespectMailLimit(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	claim := func(key string) error {
		_, err := p.ClaimKey(ctx, store.Claim{Key: ref(key), Email: "busy@example.com", IP: ip,
			Tokens:         store.MailTokens{Confirm: key + "c", Block: key + "b", Revoke: key + "r", Approve: key + "a"},
			MaxMailsPerDay: 3, MaxUnconfirmedKeys: 1000})
		return err
	}
	if err := claim("first-busy-key-0123456789"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claim(fmt.Sprintf("busy-key-%02d-0123456789", i))
		}()
	}
	wg.Wait()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var mails int
	conn.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE to_email = 'busy@example.com'`).Scan(&mails)
	if mails != 3 {
		t.Fatalf("%d mails queued, limit 3", mails)
	}
}

// A mail handed to SMTP is recorded as sent even when the sender's context
// ends during the send (a graceful shutdown).
func TestSentMailRecordedDespiteCancel(t *testing.T) {
	p, url := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := p.ClaimKey(ctx, store.Claim{Key: ref("cancel-key-0123456789"), Email: "c@example.com", IP: ip,
		Tokens:         store.MailTokens{Confirm: "c1", Block: "b1", Revoke: "r1"},
		MaxMailsPerDay: 10, MaxUnconfirmedKeys: 10}); err != nil {
		t.Fatal(err)
	}
	found, err := p.SendNext(ctx, func(store.Mail) store.Attempt { cancel(); return store.Attempt{} })
	if !found || err != nil {
		t.Fatalf("SendNext: %v %v", found, err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var sent bool
	conn.QueryRow(context.Background(), `SELECT sent_at IS NOT NULL FROM outbox`).Scan(&sent)
	if !sent {
		t.Fatal("the mail was sent but not recorded: it would go out again")
	}
}

// A claim queues its mail's facts and raw tokens, not its text: the
// sender gets them to word the mail. A mail queued with its text (before
// migration 011) goes out with its tokens filled in.
func TestClaimMailQueuedAsFacts(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	if _, err := p.ClaimKey(ctx, store.Claim{Key: ref("facts-key-0123456789"), Email: "f@example.com", IP: ip,
		Tokens: store.MailTokens{Confirm: "c1", Block: "b1", Revoke: "r1"}}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO outbox (kind, to_email, subject, body, link_tokens, next_try_at)
		VALUES ('confirm', 'old@example.com', 'Confirm', 'go to /confirm/{{confirm-token}}', '{"confirm": "c0"}', now() - interval '1 minute')`); err != nil {
		t.Fatal(err)
	}
	var sent []store.Mail
	for range 2 {
		if _, err := p.SendNext(ctx, func(m store.Mail) store.Attempt { sent = append(sent, m); return store.Attempt{} }); err != nil {
			t.Fatal(err)
		}
	}
	if len(sent) != 2 {
		t.Fatalf("%d mails sent, want 2", len(sent))
	}
	if old := sent[0]; old.Claim != nil || old.Body != "go to /confirm/c0" {
		t.Fatalf("mail queued with its text: %+v", old)
	}
	m, f := sent[1], sent[1].Claim
	if m.Kind != "confirm" || m.To != "f@example.com" || m.Subject != "" || m.Body != "" || f == nil ||
		f.KeyPrefix != ref("facts-key-0123456789").Prefix || f.IP != ip || f.Keys != 1 || f.Domains != 0 ||
		f.Expires.Sub(f.At) != store.TokenLifetime || m.Tokens["confirm"] != "c1" || m.Tokens["block"] != "b1" || len(m.Tokens) != 2 {
		t.Fatalf("claim mail %+v, facts %+v", m, f)
	}
}

// MaxPerKey 0 means no limit.
func TestNoDomainLimit(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	k := createdKey(t, p, "unlimited-key-0123456789")
	for i := 0; i < 3; i++ {
		res, err := p.AddDomain(ctx, store.NewDomain{Key: k, Name: fmt.Sprintf("d%d.example", i), Port: 443})
		if err != nil || res.Outcome != store.DomainAdded {
			t.Fatalf("add %d: %+v, %v", i, res, err)
		}
	}
}
