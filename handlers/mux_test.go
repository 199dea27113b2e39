// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// env is a Mux on a fresh database, and a pool for checking the rows.
type env struct {
	mux *Mux
	db  *pgxpool.Pool
}

func newEnv(t *testing.T, maxDomains int) *env {
	t.Helper()
	url := pgtest.NewDatabase(t)
	st, err := store.Open(context.Background(), url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	db, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &env{mux: NewMux(st, testConfig(maxDomains), zerolog.Nop(), WithAddStarter(st), WithAgents(st), WithSiteTargets(st), WithDiscovery(st)), db: db}
}

// testConfig has limits high enough not to get in the way.
func testConfig(maxDomains int) Config {
	return Config{Version: "test", MaxDomainsPerKey: maxDomains, MailsPerDay: 100, MaxUnconfirmedKeys: 100, CheckEvery: time.Minute}
}

// do parses line as a client would send it and serves it.
func (e *env) do(t *testing.T, line string) lineproto.Reply {
	t.Helper()
	req, perr := lineproto.ParseLine([]byte(line))
	if perr != nil {
		t.Fatalf("%q: %v", line, perr)
	}
	req.Remote = netip.MustParseAddr("192.0.2.7")
	return e.mux.Serve(context.Background(), &req)
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func expect(t *testing.T, r lineproto.Reply, code int, text string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.Text, text) {
		t.Fatalf("got %d %q, want %d with %q", r.Code, r.Text, code, text)
	}
}

var keyShape = regexp.MustCompile(`^[0-9a-f]{8}(-[0-9a-f]{8}){4}$`)

func TestAPIKeyIsStoredHashed(t *testing.T) {
	e := newEnv(t, 1000)
	r := e.do(t, "command apikey")
	expect(t, r, 200, "new api key")
	if !keyShape.MatchString(r.Data) {
		t.Fatalf("key %q", r.Data)
	}
	hash := sha256.Sum256([]byte(r.Data))
	if n := e.count(t, `SELECT count(*) FROM api_keys WHERE key_hash = $1 AND key_prefix = $2 AND origin = 'server'`,
		hash[:], r.Data[:8]); n != 1 {
		t.Fatalf("%d rows for the key's hash", n)
	}
	if n := e.count(t, `SELECT count(*) FROM api_keys k WHERE row_to_json(k)::text LIKE '%' || $1 || '%'`, r.Data); n != 0 {
		t.Fatal("the whole key is stored in plain text")
	}
	req, _ := lineproto.ParseLine([]byte("command apikey"))
	r = e.mux.Serve(context.Background(), &req)
	if req.Subject != r.Data[:8] {
		t.Fatalf("log subject %q is not the key prefix", req.Subject)
	}
}

func TestClaim(t *testing.T) {
	e := newEnv(t, 1000)
	key := e.do(t, "command apikey").Data
	expect(t, e.do(t, "command claim apikey "+key+" email Owner@Example.COM"), 200, "claimed for owner@example.com")
	expect(t, e.do(t, "command claim email owner@example.com apikey "+key), 200, "already claimed")
	expect(t, e.do(t, "command claim apikey "+key+" email other@example.com"), 409, "another email")
	if n := e.count(t, `SELECT count(*) FROM accounts WHERE email = 'owner@example.com' AND confirmed_at IS NULL`); n != 1 {
		t.Fatal("no dormant account for the normalised email")
	}
	if n := e.count(t, `SELECT count(*) FROM accounts WHERE email = 'other@example.com'`); n != 0 {
		t.Fatal("a refused claim left an account behind")
	}
	// A key the client made itself is registered by its claim.
	expect(t, e.do(t, "command claim apikey My-Own-Key-0123456789 email owner@example.com"), 200, "claimed for owner@example.com")
	if n := e.count(t, `SELECT count(*) FROM api_keys WHERE origin = 'client' AND claimed_at IS NOT NULL AND claimed_ip = '192.0.2.7'`); n != 1 {
		t.Fatal("client key not registered with its claim details")
	}
	expect(t, e.do(t, "command claim apikey short email owner@example.com"), 400, "apikey must be")
	expect(t, e.do(t, "command claim apikey "+key+" email not-an-email"), 400, "'@'")
	expect(t, e.do(t, "command claim apikey "+key), 400, `needs "email"`)
	if n := e.count(t, `SELECT count(*) FROM audit WHERE action = 'key.claim'`); n != 2 {
		t.Fatalf("%d claim audit rows, want 2", n)
	}
}

func TestAddDomain(t *testing.T) {
	e := newEnv(t, 2)
	key := e.do(t, "command apikey").Data
	expect(t, e.do(t, "command add domain https://KeyChest.net. apikey "+key), 200, "domain keychest.net:443 added (pending")
	expect(t, e.do(t, "command add apikey "+key+" domain keychest.net"), 200, "already registered")
	expect(t, e.do(t, "command add apikey "+key+" domain bad..name"), 400, "empty label")
	expect(t, e.do(t, "command add apikey "+key+" domain *.keychest.net:8443"), 200, "*.keychest.net:8443 added")
	expect(t, e.do(t, "command add apikey "+key+" domain third.example"), 403, "already has 2 domains, the most one key may hold")
	expect(t, e.do(t, "command add apikey "+key+" domain keychest.net"), 200, "already registered") // at the limit, still ok
	expect(t, e.do(t, "command add apikey unknown-key-0123456789 domain example.com"), 401, "unknown apikey")
	expect(t, e.do(t, "command add domain example.com"), 400, `needs "apikey"`)
	expect(t, e.do(t, "command add domain example.com apikey "+key+" email x@example.com"), 400, `does not take "email"`)
	if n := e.count(t, `SELECT count(*) FROM domains`); n != 2 {
		t.Fatalf("%d domain rows, want 2", n)
	}
	if n := e.count(t, `SELECT domain_count FROM api_keys`); n != 2 {
		t.Fatalf("domain_count %d, want 2", n)
	}
	if n := e.count(t, `SELECT count(*) FROM domains WHERE wildcard AND name = '*.keychest.net' AND port = 8443`); n != 1 {
		t.Fatal("wildcard row missing")
	}
}

// Values are data, never SQL.
func TestSQLTextIsJustText(t *testing.T) {
	e := newEnv(t, 1000)
	key := "Robert-DROP-TABLE-domains"
	expect(t, e.do(t, "command claim apikey "+key+" email o'reilly@example.com"), 200, "claimed")
	expect(t, e.do(t, "command add apikey "+key+" domain example.com';DROP"), 400, "not allowed")
	if n := e.count(t, `SELECT count(*) FROM accounts WHERE email = $1`, "o'reilly@example.com"); n != 1 {
		t.Fatal("email with a quote not stored as sent")
	}
}

func TestConcurrentClaimsOneWins(t *testing.T) {
	e := newEnv(t, 1000)
	const n = 8
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- e.do(t, fmt.Sprintf("command claim apikey Racing-Key-0123456789 email u%d@example.com", i)).Code
		}()
	}
	wg.Wait()
	close(codes)
	won := 0
	for c := range codes {
		switch c {
		case 200:
			won++
		case 409:
		default:
			t.Fatalf("code %d", c)
		}
	}
	if won != 1 || e.count(t, `SELECT count(*) FROM api_keys`) != 1 {
		t.Fatalf("%d claims won, want exactly 1", won)
	}
}

// Racing adds of one new domain: one row, one "added", the rest "already
// registered" (never a spurious 429 from a stale snapshot).
func TestConcurrentAddsOneRow(t *testing.T) {
	e := newEnv(t, 1000)
	for round := 0; round < 5; round++ {
		key := e.do(t, "command apikey").Data
		start := make(chan struct{})
		texts := make(chan string, 32)
		var wg sync.WaitGroup
		for i := 0; i < 32; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := e.do(t, "command add domain same.example apikey "+key)
				if r.Code != 200 {
					t.Errorf("%d %s", r.Code, r.Text)
				}
				texts <- r.Text
			}()
		}
		close(start)
		wg.Wait()
		close(texts)
		added := 0
		for text := range texts {
			if strings.Contains(text, " added") {
				added++
			}
		}
		if added != 1 {
			t.Fatalf("round %d: %d adds said added, want 1", round, added)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM domains`); n != 5 {
		t.Fatalf("%d rows, want 5", n)
	}
}

func TestDatabaseDownIs503(t *testing.T) {
	st, err := store.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=1", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var logs bytes.Buffer
	m := NewMux(st, Config{MaxDomainsPerKey: 10}, zerolog.New(&logs))
	for _, line := range []string{"command apikey", "command claim apikey Some-Key-0123456789 email a@example.com",
		"command add domain example.com apikey Some-Key-0123456789"} {
		req, _ := lineproto.ParseLine([]byte(line))
		r := m.Serve(context.Background(), &req)
		expect(t, r, 503, "database unavailable")
	}
	if seen, err := logcode.CheckEntries(logs.Bytes()); err != nil || seen[logcode.DatabaseUnavailable] != 3 {
		t.Fatalf("%v, entries by code %v", err, seen)
	}
}

func TestInlineVerbsAndRouting(t *testing.T) {
	m := NewMux(nil, Config{Version: "1.2.3"}, zerolog.Nop())
	for line, blocking := range map[string]bool{
		"command apikey": true, "command add domain d apikey k": true, "command add domain d": false,
		"command ping": false, "command help": false, "command nope": false, "command apikey extra 1": false,
	} {
		req, _ := lineproto.ParseLine([]byte(line))
		if m.Blocking(&req) != blocking {
			t.Errorf("Blocking(%q) = %v", line, !blocking)
		}
	}
	serve := func(line string) lineproto.Reply {
		req, _ := lineproto.ParseLine([]byte(line))
		return m.Serve(context.Background(), &req)
	}
	expect(t, serve("command ping"), 200, "pong")
	if r := serve("command version"); r.Data != "keychest-lined 1.2.3" {
		t.Errorf("version data %q", r.Data)
	}
	if r := serve("command help"); !strings.Contains(r.Data, "add domain D apikey K") {
		t.Errorf("help data %q", r.Data)
	}
	if r := serve("command quit"); r != lineproto.Bye("bye") {
		t.Errorf("quit %+v", r)
	}
	expect(t, serve("command nope"), 400, `unknown command "nope"`)
	expect(t, serve("command ping extra 1"), 400, `does not take "extra"`)
}

// The abuse limits answer 429 with a hint of when to retry.
func TestAbuseLimits(t *testing.T) {
	e := newEnv(t, 1000)
	cfg := testConfig(1000)
	cfg.KeysPerIPHour, cfg.ClaimsPerIPHour, cfg.MailsPerDay = 2, 1, 100
	e.mux = NewMux(e.mux.store, cfg, zerolog.Nop())
	first := e.do(t, "command apikey").Data
	e.do(t, "command apikey")
	expect(t, e.do(t, "command apikey"), 429, "too many new keys from 192.0.2.7; retry in 3")
	expect(t, e.do(t, "command claim apikey "+first+" email a@example.com"), 200, "claimed")
	expect(t, e.do(t, "command claim apikey "+first+" email a@example.com"), 429, "too many claims from 192.0.2.7; retry in")
}

// status, list and remove.
func TestStatusListRemove(t *testing.T) {
	e := newEnv(t, 1000)
	key := e.do(t, "command apikey").Data
	r := e.do(t, "command status apikey "+key)
	if !strings.HasPrefix(r.Data, "key="+key[:8]+" claimed=no email=- confirmed=no blocked=no revoked=no domains=0 created=") {
		t.Fatalf("status %q", r.Data)
	}
	for i := 0; i < 60; i++ {
		e.do(t, fmt.Sprintf("command add domain host-number-%02d.example.org apikey %s", i, key))
	}
	r = e.do(t, "command list apikey "+key)
	expect(t, r, 200, "60 domains")
	if !strings.HasPrefix(r.Data, "host-number-00.example.org:443 host-number-01") || !strings.HasSuffix(r.Data, " more)") ||
		len(r.Bytes()) >= 1000 {
		t.Fatalf("list data (%d bytes) %q", len(r.Bytes()), r.Data)
	}
	expect(t, e.do(t, "command remove domain host-number-00.example.org apikey "+key), 200, "removed")
	expect(t, e.do(t, "command remove domain host-number-00.example.org apikey "+key), 404, "not registered")
	if r := e.do(t, "command status apikey "+key); !strings.Contains(r.Data, "domains=59") {
		t.Fatalf("status after remove %q", r.Data)
	}
	expect(t, e.do(t, "command list apikey unknown-key-0123456789"), 401, "unknown apikey")
}

// start hands line to the Mux the way the server does a blocking request
// it can keep in the loop: Start when the Mux takes it, else Serve on a
// worker. It reports whether Start took it.
func (e *env) start(t *testing.T, line string) (lineproto.Reply, bool) {
	t.Helper()
	req, perr := lineproto.ParseLine([]byte(line))
	if perr != nil {
		t.Fatalf("%q: %v", line, perr)
	}
	req.Remote = netip.MustParseAddr("192.0.2.7")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan lineproto.Reply, 1)
	if !e.mux.Start(ctx, &req, func(r lineproto.Reply) { got <- r }) {
		return e.mux.Serve(ctx, &req), false
	}
	return <-got, true
}

// An add the Mux starts without a worker answers as Serve does; what it
// cannot start (bad arguments, other verbs) is left to Serve.
func TestStartedAddAnswersLikeServe(t *testing.T) {
	e := newEnv(t, 2)
	key := e.do(t, "command apikey").Data
	for _, c := range []struct {
		line    string
		started bool
		code    int
		text    string
	}{
		{"command add domain https://KeyChest.net. apikey " + key, true, 200, "domain keychest.net:443 added (pending"},
		{"command add apikey " + key + " domain keychest.net", true, 200, "already registered"},
		{"command add apikey " + key + " domain bad..name", false, 400, "empty label"},
		{"command add apikey " + key + " domain *.keychest.net:8443", true, 200, "*.keychest.net:8443 added"},
		{"command add apikey " + key + " domain third.example", true, 403, "already has 2 domains"},
		{"command add apikey unknown-key-0123456789 domain example.com", true, 401, "unknown apikey"},
		{"command add domain example.com", false, 400, `needs "apikey"`},
		{"command remove apikey " + key + " domain keychest.net", false, 200, "removed"},
	} {
		r, started := e.start(t, c.line)
		if started != c.started {
			t.Errorf("%q: started %v, want %v", c.line, started, c.started)
		}
		expect(t, r, c.code, c.text)
	}
	if n := e.count(t, `SELECT count(*) FROM domains`); n != 1 {
		t.Fatalf("%d domain rows, want 1", n)
	}
}

// A started add whose batch is held up in PostgreSQL is answered 503 when
// its request's time is up, not when the batch ends; the batch still
// commits the add afterwards, as on the worker path (every write is
// idempotent, so the client's retry finds it stored).
func TestStartedAddAnsweredWhenItsTimeIsUp(t *testing.T) {
	e := newEnv(t, 100)
	key := e.do(t, "command apikey").Data
	bg := context.Background()
	tx, err := e.db.Begin(bg)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(bg)
	if _, err := tx.Exec(bg, "LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	req, perr := lineproto.ParseLine([]byte("command add domain held.example apikey " + key))
	if perr != nil {
		t.Fatal(perr)
	}
	ctx, timeUp := context.WithCancel(bg)
	got := make(chan lineproto.Reply, 1)
	if !e.mux.Start(ctx, &req, func(r lineproto.Reply) { got <- r }) {
		t.Fatal("add not started")
	}
	// Its batch waits for the lock; only then is its time up.
	waiting := `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`
	for give := time.Now().Add(10 * time.Second); e.count(t, waiting) == 0; {
		select {
		case r := <-got:
			t.Fatalf("answered %d %q while its batch should wait", r.Code, r.Text)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(give) {
			t.Fatal("the add's batch never waited for the lock")
		}
	}
	timeUp()
	select {
	case r := <-got:
		expect(t, r, lineproto.CodeUnavailable, "")
	case <-time.After(10 * time.Second):
		t.Fatal("no answer when its time was up")
	}
	tx.Rollback(bg)
	// One writer runs the batches in turn: this add's batch follows the held one.
	expect(t, e.do(t, "command add domain next.example apikey "+key), 200, "added")
	if n := e.count(t, `SELECT count(*) FROM domains WHERE name = 'held.example'`); n != 1 {
		t.Fatalf("%d rows for the held add, want 1 (committed after its 503)", n)
	}
}
