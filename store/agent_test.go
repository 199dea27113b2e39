// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/store"
)

// agentWorld has two confirmed accounts (owner, stranger), an unconfirmed
// one (pending) and one registered agent.
type agentWorld struct {
	p     *store.Postgres
	db    *pgx.Conn
	agent store.KeyRef
}

func newAgentWorld(t *testing.T) *agentWorld {
	t.Helper()
	p, url := open(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(ctx) })
	for _, o := range []struct{ key, email string }{
		{"owner-key-0123456789", "owner@example.com"}, {"stranger-key-0123456", "stranger@example.com"},
	} {
		tokens := claimWithTokens(t, p, o.key, o.email)
		if _, err := p.UseToken(ctx, "confirm", tokens.Confirm, ip); err != nil {
			t.Fatal(err)
		}
	}
	claimWithTokens(t, p, "pending-key-01234567", "pending@example.com")
	w := &agentWorld{p: p, db: db, agent: ref("agt-0123456789abcdef")}
	err = p.RegisterAgent(ctx, store.NewAgent{ID: "agent-x@agents.test", Key: w.agent, Site: "office",
		Host: "ldap-gw.corp.example", Version: "1.0", Summary: []byte(`{"host":"ldap-gw.corp.example"}`), IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func codeHash(code string) [32]byte { return sha256.Sum256([]byte(code)) }

func (w *agentWorld) claim(owner, code string, perHour int) (store.Agent, error) {
	return w.p.ClaimAgent(context.Background(), store.AgentClaim{Owner: ref(owner), CodeHash: codeHash(code),
		IP: netip.MustParseAddr("198.51.100.9"), MaxPerIPHour: perHour})
}

func (w *agentWorld) setCode(t *testing.T, code string, ttl time.Duration) {
	t.Helper()
	if _, err := w.p.SetClaimCode(context.Background(), w.agent, codeHash(code), ttl); err != nil {
		t.Fatal(err)
	}
}

func (w *agentWorld) list(t *testing.T, owner string) []store.Agent {
	t.Helper()
	l, err := w.p.AccountAgents(context.Background(), ref(owner))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestAgentRegisterHeartbeatClaimList(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	a, err := w.p.AgentHeartbeat(ctx, store.AgentBeat{Key: w.agent, Site: "office", Host: "ldap-gw.corp.example",
		Version: "1.1", Summary: []byte(`{}`), Refusing: true, IP: ip})
	if err != nil || a.ID != "agent-x@agents.test" || a.Claimed || !a.Refusing || a.Version != "1.1" {
		t.Fatalf("heartbeat %+v, %v", a, err)
	}
	if _, err := w.p.AgentHeartbeat(ctx, store.AgentBeat{Key: ref("agt-unknown-0123456"), Site: "x"}); !errors.Is(err, store.ErrAgentUnknown) {
		t.Fatalf("unknown agent's heartbeat: %v", err)
	}
	if _, err := w.p.StoreAgentLogs(ctx, w.agent, []store.AgentLog{{Code: logcode.AgentStarted, Entry: []byte(`{}`)}}, time.Hour); !errors.Is(err, store.ErrAgentNotClaimed) {
		t.Fatalf("logs before the claim: %v", err)
	}
	w.setCode(t, "AAAAA-BBBBB", time.Hour)
	got, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 0)
	if err != nil || !got.Claimed || got.Site != "office" || got.ID != "agent-x@agents.test" {
		t.Fatalf("claim: %+v, %v", got, err)
	}
	if l := w.list(t, "owner-key-0123456789"); len(l) != 1 || l[0].ID != got.ID || !l[0].Claimed {
		t.Fatalf("owner's agents: %+v", l)
	}
	if _, err := w.p.SetClaimCode(ctx, w.agent, codeHash("CCCCC-DDDDD"), time.Hour); !errors.Is(err, store.ErrAgentClaimed) {
		t.Fatalf("a new code for a claimed agent: %v", err)
	}
	n, err := w.p.StoreAgentLogs(ctx, w.agent, []store.AgentLog{
		{Code: logcode.AgentStarted, Level: "info", EventTime: time.Now(), Entry: []byte(`{"code":"` + logcode.AgentStarted + `"}`)},
		{Code: logcode.AgentDialRefused, Entry: []byte(`{"code":"` + logcode.AgentDialRefused + `"}`)}}, time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("logs: %d, %v", n, err)
	}
	// Entries past the retention go with the next batch.
	w.db.Exec(ctx, `UPDATE agent_logs SET received_at = now() - interval '2 hours' WHERE code = $1`, logcode.AgentStarted)
	w.p.StoreAgentLogs(ctx, w.agent, nil, time.Hour)
	var codes []string
	rows, _ := w.db.Query(ctx, `SELECT code FROM agent_logs ORDER BY id`)
	codes, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	if len(codes) != 1 || codes[0] != logcode.AgentDialRefused {
		t.Fatalf("kept logs: %q", codes)
	}
}

// What a stranger's key can do to another account's agent: nothing.
func TestAgentClaimByStrangers(t *testing.T) {
	w := newAgentWorld(t)
	w.setCode(t, "AAAAA-BBBBB", time.Hour)
	// Keys that may not claim at all: unknown, unclaimed, of an unconfirmed account.
	ctx := context.Background()
	if err := w.p.CreateKey(ctx, store.NewKey{Key: ref("anon-key-0123456789"), IP: ip}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]error{"nobody-key-012345678": store.ErrUnknownKey,
		"anon-key-0123456789": store.ErrAgentOwner, "pending-key-01234567": store.ErrAgentOwner} {
		if _, err := w.claim(key, "AAAAA-BBBBB", 0); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", key, err, want)
		}
		if _, err := w.p.AccountAgents(ctx, ref(key)); !errors.Is(err, want) {
			t.Errorf("%s lists: %v, want %v", key, err, want)
		}
	}
	// A wrong code claims nothing, and the right one still works once.
	if _, err := w.claim("stranger-key-0123456", "ZZZZZ-ZZZZZ", 0); !errors.Is(err, store.ErrClaimCode) {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.claim("stranger-key-0123456", "AAAAA-BBBBB", 0); !errors.Is(err, store.ErrClaimCode) {
		t.Fatalf("a used code, again: %v", err)
	}
	if l := w.list(t, "stranger-key-0123456"); len(l) != 0 {
		t.Fatalf("the stranger lists %+v", l)
	}
	if l := w.list(t, "owner-key-0123456789"); len(l) != 1 {
		t.Fatalf("the owner lists %+v", l)
	}
	// A revoked owner key neither lists nor claims.
	if _, err := w.p.RevokeKey(ctx, "owner-ke"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.AccountAgents(ctx, ref("owner-key-0123456789")); !errors.Is(err, store.ErrKeyRevoked) {
		t.Fatalf("revoked key lists: %v", err)
	}
}

func TestAgentClaimCodeExpiresAndIsReplaced(t *testing.T) {
	w := newAgentWorld(t)
	w.setCode(t, "AAAAA-BBBBB", -time.Second)
	if _, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 0); !errors.Is(err, store.ErrClaimCode) {
		t.Fatalf("expired code: %v", err)
	}
	w.setCode(t, "CCCCC-DDDDD", time.Hour)
	w.setCode(t, "EEEEE-FFFFF", time.Hour) // replaces CCCCC-DDDDD
	if _, err := w.claim("owner-key-0123456789", "CCCCC-DDDDD", 0); !errors.Is(err, store.ErrClaimCode) {
		t.Fatalf("replaced code: %v", err)
	}
	if _, err := w.claim("owner-key-0123456789", "EEEEE-FFFFF", 0); err != nil {
		t.Fatalf("live code: %v", err)
	}
}

// Wrong codes count against the client's limit, and stay counted.
func TestAgentClaimAttemptsLimited(t *testing.T) {
	w := newAgentWorld(t)
	w.setCode(t, "AAAAA-BBBBB", time.Hour)
	for i := range 3 {
		if _, err := w.claim("stranger-key-0123456", "WRONG-"+string(rune('A'+i))+"AAAA", 3); !errors.Is(err, store.ErrClaimCode) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	_, err := w.claim("owner-key-0123456789", "AAAAA-BBBBB", 3)
	var le *store.LimitError
	if !errors.As(err, &le) || le.Wait <= 0 {
		t.Fatalf("fourth attempt from the same client: %v", err)
	}
	if _, err := w.p.ClaimAgent(context.Background(), store.AgentClaim{Owner: ref("owner-key-0123456789"),
		CodeHash: codeHash("AAAAA-BBBBB"), IP: netip.MustParseAddr("203.0.113.1"), MaxPerIPHour: 3}); err != nil {
		t.Fatalf("another client: %v", err)
	}
}

func TestAgentRegistrationsLimited(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	for i := range 3 {
		err := p.RegisterAgent(ctx, store.NewAgent{ID: "a" + string(rune('0'+i)) + "@agents.test",
			Key: ref("agt-limit-000000000" + string(rune('0'+i))), Site: "s", Summary: []byte(`{}`), IP: ip, MaxPerIPHour: 2})
		if (i < 2) != (err == nil) {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
}
