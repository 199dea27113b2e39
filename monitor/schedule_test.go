// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

// world is a database, a CA, loopback TLS servers and a clock that the
// test moves by hand.
type world struct {
	*fixture
	db   *store.Postgres
	sql  *pgxpool.Pool
	mu   sync.Mutex
	keys int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	url := pgtest.NewDatabase(t)
	db, err := store.Open(context.Background(), url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &world{fixture: newFixture(t), db: db, sql: pool}
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = w.now.Add(d)
}

func (w *world) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.sql.Exec(context.Background(), sql, args...); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

// register adds an account (confirmed or not) with one key holding names,
// and returns the key.
func (w *world) register(email string, confirmed bool, port int, names ...string) store.KeyRef {
	w.t.Helper()
	w.keys++
	key := store.KeyRef{Hash: sha256.Sum256([]byte(fmt.Sprint(email, w.keys))), Prefix: fmt.Sprintf("k%07d", w.keys)}
	w.exec(`INSERT INTO accounts (email, confirmed_at) VALUES ($1, CASE WHEN $2 THEN now() END) ON CONFLICT (email) DO NOTHING`, email, confirmed)
	w.exec(`INSERT INTO api_keys (key_hash, key_prefix, origin, account_id)
		SELECT $1, $2, 'server', id FROM accounts WHERE email = $3`, key.Hash[:], key.Prefix, email)
	for _, n := range names {
		w.exec(`INSERT INTO domains (api_key_id, name, port, wildcard) SELECT id, $2, $3, $4 FROM api_keys WHERE key_hash = $1`,
			key.Hash[:], n, port, n[0] == '*')
	}
	return key
}

func (w *world) monitor(owner string) *Monitor {
	p := w.prober(loopback)
	p.Now = w.clock
	pol := DefaultPolicy()
	pol.Jitter = nil
	return New(w.db, p, Config{Owner: owner, Concurrency: 8, Policy: pol, Now: w.clock}, zerolog.Nop(), nil)
}

func (w *world) round(m *Monitor) int {
	w.t.Helper()
	n, err := m.Round(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) status(k store.KeyRef, name string, port int) store.CertStatus {
	w.t.Helper()
	s, err := w.db.CertStatus(context.Background(), k, name, port)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.sql.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// Active domains are probed once per name however many keys hold them;
// pending ones are not probed at all; "cert" reports what was seen.
func TestRoundProbesActiveTargetsOnce(t *testing.T) {
	w := newWorld(t)
	shared := w.serve("127.0.0.2", "shared.test", 90*day, 60*day)
	port := shared.Port()
	w.dns["soon.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	pending := w.serve("127.0.0.3", "pending.test", 90*day, 60*day)
	alice := w.register("alice@example.com", true, port, "shared.test")
	bob := w.register("bob@example.com", true, port, "shared.test")
	carol := w.register("carol@example.com", false, pending.Port(), "pending.test")
	if got := w.status(alice, "shared.test", port).State; got != StateUnknown {
		t.Fatalf("before any probe: %s", got)
	}
	if n := w.round(w.monitor("m1")); n != 1 {
		t.Fatalf("%d probes, want 1", n)
	}
	if shared.Handshakes.Load() != 1 || pending.Accepts.Load() != 0 {
		t.Fatalf("handshakes: shared %d, pending %d", shared.Handshakes.Load(), pending.Accepts.Load())
	}
	for _, k := range []store.KeyRef{alice, bob} {
		s := w.status(k, "shared.test", port)
		if s.State != StateOK || s.Addresses != 1 || s.Expires == nil || !s.Expires.Equal(w.now.Add(60*day)) ||
			s.IssuerCN != w.ca.Cert.Subject.CommonName || s.Checked == nil {
			t.Fatalf("status %+v", s)
		}
	}
	if s := w.status(carol, "pending.test", pending.Port()); s.State != StatePending {
		t.Fatalf("pending domain: %+v", s)
	}
	if _, err := w.db.CertStatus(context.Background(), alice, "other.test", port); err != store.ErrNotFound {
		t.Fatalf("unregistered domain: %v", err)
	}
	// Nothing changed: the next round writes no history.
	before := w.count(`SELECT (SELECT count(*) FROM mon_observations) + (SELECT count(*) FROM mon_certs) + (SELECT count(*) FROM mon_findings)`)
	w.advance(7 * time.Hour)
	w.round(w.monitor("m1"))
	after := w.count(`SELECT (SELECT count(*) FROM mon_observations) + (SELECT count(*) FROM mon_certs) + (SELECT count(*) FROM mon_findings)`)
	if before != after || w.count(`SELECT probes FROM mon_targets`) != 2 {
		t.Fatalf("unchanged probe wrote history: %d rows, then %d", before, after)
	}
}

// Three monitors on one database: every target is probed exactly once in
// a round.
func TestThreeMonitorsProbeEachTargetOnce(t *testing.T) {
	w := newWorld(t)
	const n = 30
	var names []string
	srv := w.serve("127.0.0.2", "t0.test", 90*day, 60*day)
	for i := range n {
		name := fmt.Sprintf("t%d.test", i)
		names = append(names, name)
		w.dns[name] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	}
	w.register("ops@example.com", true, srv.Port(), names...)
	w.round(w.monitor("setup")) // nothing due before the sync: this round probes all once
	w.exec(`UPDATE mon_targets SET next_due = $1`, w.now)
	before := srv.Handshakes.Load()
	var wg sync.WaitGroup
	counts := make([]int, 3)
	for i := range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); counts[i] = w.round(w.monitor(fmt.Sprintf("m%d", i))) }()
	}
	wg.Wait()
	if total := counts[0] + counts[1] + counts[2]; total != n || srv.Handshakes.Load()-before != n {
		t.Fatalf("probes %v (handshakes %d), want %d in all", counts, srv.Handshakes.Load()-before, n)
	}
	if bad := w.count(`SELECT count(*) FROM mon_targets WHERE probes <> 2`); bad != 0 {
		t.Fatalf("%d targets not probed exactly once per round", bad)
	}
}

// A monitor killed while holding leases: nobody probes its targets until
// the leases run out, then another monitor does, and the dead one's late
// write is refused.
func TestKilledMonitorsLeasesAreTakenOver(t *testing.T) {
	w := newWorld(t)
	srv := w.serve("127.0.0.2", "a.test", 90*day, 60*day)
	w.dns["b.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	w.register("ops@example.com", true, srv.Port(), "a.test", "b.test")
	dead := w.monitor("dead")
	dead.maintain(context.Background())
	held, err := w.db.Lease(context.Background(), "dead", w.now, w.now.Add(5*time.Minute), 10)
	if err != nil || len(held) != 2 {
		t.Fatalf("lease: %v %d", err, len(held))
	}
	alive := w.monitor("alive")
	if n := w.round(alive); n != 0 {
		t.Fatalf("leased targets probed by another monitor: %d", n)
	}
	w.advance(5*time.Minute + time.Second)
	if n := w.round(alive); n != 2 {
		t.Fatalf("after the lease ran out: %d probes, want 2", n)
	}
	late := finding.Verdict{TargetID: held[0].ID, CheckedAt: w.now, NextDue: w.now, State: StateOK}
	ok, err := w.db.WriteBack(context.Background(), "dead", []finding.Verdict{late}, time.Minute)
	if err != nil || ok[0] {
		t.Fatalf("late write of a lost lease: written=%v err=%v", ok, err)
	}
}

// A removed domain stops being probed, and its history is kept until the
// history limit.
func TestRemovedDomainStopsAndHistoryExpires(t *testing.T) {
	w := newWorld(t)
	srv := w.serve("127.0.0.2", "gone.test", 90*day, 60*day)
	w.register("ops@example.com", true, srv.Port(), "gone.test")
	m := w.monitor("m")
	w.round(m)
	w.exec(`DELETE FROM domains WHERE name = 'gone.test'`)
	w.advance(7 * time.Hour)
	before := srv.Accepts.Load()
	if n := w.round(m); n != 0 || srv.Accepts.Load() != before {
		t.Fatalf("removed domain probed: %d", n)
	}
	if w.count(`SELECT count(*) FROM mon_targets WHERE NOT active`) != 1 || w.count(`SELECT count(*) FROM mon_observations`) != 1 {
		t.Fatal("history of the removed target not kept")
	}
	if _, err := w.db.Housekeep(context.Background(), w.now.Add(-400*day)); err != nil {
		t.Fatal(err)
	}
	if w.count(`SELECT count(*) FROM mon_targets`) != 1 {
		t.Fatal("history deleted before its time")
	}
	if _, err := w.db.Housekeep(context.Background(), w.now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if w.count(`SELECT count(*) FROM mon_targets`)+w.count(`SELECT count(*) FROM mon_certs`) != 0 {
		t.Fatal("history kept past its time")
	}
}

// A wildcard has no host to dial; a certificate seen elsewhere that
// covers it is reported for it.
func TestWildcardReportsCoveringCertificate(t *testing.T) {
	w := newWorld(t)
	srv := w.serve("127.0.0.2", "www.wild.test", 90*day, 45*day)
	srv.Swap(w.issue(certLeaf(w.now, 90*day, 45*day, "www.wild.test", "*.wild.test")))
	key := w.register("ops@example.com", true, srv.Port(), "www.wild.test", "*.wild.test")
	if s := w.status(key, "*.wild.test", srv.Port()); s.State != StateWildcard || s.Expires != nil {
		t.Fatalf("wildcard before any probe: %+v", s)
	}
	if n := w.round(w.monitor("m")); n != 1 {
		t.Fatalf("%d probes, want 1 (the wildcard is not dialled)", n)
	}
	s := w.status(key, "*.wild.test", srv.Port())
	if s.State != StateWildcard || s.Expires == nil || !s.Expires.Equal(w.now.Add(45*day)) {
		t.Fatalf("wildcard: %+v", s)
	}
	if err := w.db.RequestCheck(context.Background(), key, "*.wild.test", srv.Port(), w.now, time.Minute); err != store.ErrWildcardHost {
		t.Fatalf("check of a wildcard: %v", err)
	}
}

// "check" makes a target due now, but at most once a minute.
func TestCheckIsRateLimited(t *testing.T) {
	w := newWorld(t)
	srv := w.serve("127.0.0.2", "c.test", 90*day, 60*day)
	key := w.register("ops@example.com", true, srv.Port(), "c.test")
	m := w.monitor("m")
	w.round(m)
	w.advance(10 * time.Second)
	if err := w.db.RequestCheck(context.Background(), key, "c.test", srv.Port(), w.now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := w.round(m); n != 0 {
		t.Fatal("checked again within a minute of the last probe")
	}
	w.advance(50 * time.Second)
	if n := w.round(m); n != 1 {
		t.Fatalf("check not honoured a minute after the last probe: %d", n)
	}
	pendingKey := w.register("new@example.com", false, srv.Port(), "c.test")
	if err := w.db.RequestCheck(context.Background(), pendingKey, "c.test", srv.Port(), w.now, time.Minute); err != store.ErrPending {
		t.Fatalf("check of a pending domain: %v", err)
	}
}

// A stopping monitor releases the leases of probes it cut short, so that
// nothing stays held.
func TestShutdownReleasesLeases(t *testing.T) {
	w := newWorld(t)
	silent, err := net.Listen("tcp", "127.0.0.2:0") // accepts and never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	w.dns["slow.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	w.register("ops@example.com", true, silent.Addr().(*net.TCPAddr).Port, "slow.test")
	p := w.prober(loopback)
	p.HandshakeTimeout = time.Hour
	m := New(w.db, p, Config{Owner: "m", Concurrency: 2, Policy: DefaultPolicy(), Grace: 50 * time.Millisecond, Poll: 10 * time.Millisecond},
		zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { m.Run(ctx); close(stopped) }()
	for w.count(`SELECT count(*) FROM mon_targets WHERE lease_owner = 'm'`) == 0 {
		time.Sleep(5 * time.Millisecond) // waiting for a condition, not for time
	}
	cancel()
	<-stopped
	if held := w.count(`SELECT count(*) FROM mon_targets WHERE lease_owner IS NOT NULL`); held != 0 {
		t.Fatalf("%d leases left held", held)
	}
	if probes := w.count(`SELECT probes FROM mon_targets`); probes != 0 {
		t.Fatal("a probe cut short was written as a result")
	}
}

// Through the store: a certificate swapped for one about to expire opens
// an expiry finding on the next probe; a renewed one closes it, records
// the renewal, and the finding stays as history.
func TestSwapOpensThenRenewalCloses(t *testing.T) {
	w := newWorld(t)
	srv := w.serve("127.0.0.2", "swap.test", 90*day, 60*day)
	key := w.register("ops@example.com", true, srv.Port(), "swap.test")
	m := w.monitor("m")
	w.round(m)
	srv.Swap(w.issue(certLeaf(w.now, 90*day, 5*day, "swap.test")))
	w.advance(time.Minute)
	if err := w.db.RequestCheck(context.Background(), key, "swap.test", srv.Port(), w.now, time.Minute); err != nil {
		t.Fatal(err)
	}
	w.round(m)
	s := w.status(key, "swap.test", srv.Port())
	if s.State != StateCritical || len(s.Findings) != 1 || s.Findings[0] != finding.KindExpiry || !s.Expires.Equal(w.now.Add(5*day-time.Minute)) {
		t.Fatalf("after the swap: %+v", s)
	}
	srv.Swap(w.issue(certLeaf(w.now, 90*day, 90*day, "swap.test")))
	w.advance(time.Hour)
	w.round(m)
	s = w.status(key, "swap.test", srv.Port())
	if s.State != StateOK || len(s.Findings) != 0 {
		t.Fatalf("after the renewal: %+v", s)
	}
	if w.count(`SELECT count(*) FROM mon_events WHERE kind = 'renewed'`) != 1 {
		t.Fatal("renewal not recorded")
	}
	all, err := w.db.Findings(context.Background(), false, "ops@example.com")
	if err != nil || len(all) != 1 || all[0].Closed == nil || all[0].Severity != finding.Critical {
		t.Fatalf("history: %+v %v", all, err)
	}
	if open, _ := w.db.Findings(context.Background(), true, ""); len(open) != 0 {
		t.Fatalf("open findings after renewal: %+v", open)
	}
	if w.count(`SELECT count(*) FROM mon_observations`) != 3 || w.count(`SELECT count(*) FROM mon_observations WHERE ended_at IS NULL`) != 1 {
		t.Fatal("observation history: want three rows, one current")
	}
}
