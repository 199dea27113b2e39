package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/netip"
	"testing"

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

func TestMigrateAgainIsHarmless(t *testing.T) {
	_, url := open(t)
	for i := 0; i < 2; i++ {
		v, err := store.Migrate(context.Background(), url)
		if err != nil || v != 2 {
			t.Fatalf("run %d: version %d, %v", i, v, err)
		}
	}
}

func TestAddDomainOutcomes(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	k := ref("server-key-0123456789")
	if err := p.CreateKey(ctx, store.NewKey{Key: k, IP: ip}); err != nil {
		t.Fatal(err)
	}
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
			Tokens:  store.MailTokens{Confirm: key + "c", Block: key + "b", Revoke: key + "r"},
			Compose: func(store.ClaimMail) (string, string) { return "s", "b" }, MaxMailsPerDay: 10, MaxUnconfirmedKeys: 10})
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
