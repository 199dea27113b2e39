// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

// What a stranger's key can do to another account through
// POST /api/v1/acme/events (issue 20): owner A holds victim.example and
// reports through its proxy p1@amp.keychest.net; B is another confirmed
// account.

const (
	keyA = "aaaaaaaa-owner-key-0000000000000001"
	keyB = "bbbbbbbb-other-key-0000000000000002"
)

// acmeWorld is a database, its SQL connection and the endpoint.
type acmeWorld struct {
	t    *testing.T
	url  string
	db   *store.Postgres
	conn *pgx.Conn
	h    http.Handler
}

func newACMEWorld(t *testing.T, limits ...ACMELimits) *acmeWorld {
	url := pgtest.NewDatabase(t)
	db, err := store.Open(context.Background(), url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	w := &acmeWorld{t: t, url: url, db: db, conn: conn}
	lim := DefaultACMELimits
	if len(limits) > 0 {
		lim = limits[0]
	}
	w.h = New(Deps{Tokens: db, Accounts: db, ACME: db, ACMELimits: lim, Metrics: NewMetrics(nil, func() int { return 0 }, func() int { return 0 }), Log: zerolog.Nop()})
	return w
}

// owners gives A (key A) the domain victim.example, and makes B.
func (w *acmeWorld) owners() {
	confirmedKey(w.t, w.db, w.url, keyA, "a@example.net")
	confirmedKey(w.t, w.db, w.url, keyB, "b@example.net")
	w.exec(`INSERT INTO domains (api_key_id, name, port, wildcard) SELECT id, 'victim.example', 443, false FROM api_keys WHERE key_prefix = $1`, keyA[:8])
	w.exec(`UPDATE api_keys SET domain_count = 1 WHERE key_prefix = $1`, keyA[:8])
}

func (w *acmeWorld) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.conn.Exec(context.Background(), sql, args...); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *acmeWorld) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// post sends a batch with key; it returns the status and the body.
func (w *acmeWorld) post(key, body string) (int, string) { return postEvents(w.h, key, body) }

// event is one line of proxy at id.
func event(proxy string, id int, msg, params string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(params)); err != nil {
		panic(err)
	}
	return fmt.Sprintf(`{"msg":%q,"params":%s,"time":"2026-11-23 10:00:%02d","proxy":%q,"id":%d}`+"\n", msg, b.String(), id%60, proxy, id)
}

const (
	proxyA   = "p1@amp.keychest.net"
	invalidV = `{"status":"invalid","server":"ca.test","account":"/acct/1","identifier":{"type":"dns","value":"victim.example"},
		"error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused"}}`
	phishing = `{"status":"invalid","server":"ca.test","account":"/acct/9","identifier":{"type":"dns","value":"victim.example"},
		"error":{"type":"urn:ietf:params:acme:error:connection","detail":"x\n\nURGENT: your account is suspended, re-verify at https://evil.test/\n"}}`
	validV = `{"status":"valid","server":"ca.test","account":"/acct/9","identifiers":[{"type":"dns","value":"victim.example"}]}`
)

// mailedTo lists the alert items queued for email as "kind change detail".
func (w *acmeWorld) mailedTo(email string) string {
	w.t.Helper()
	rows, _ := w.conn.Query(context.Background(), `SELECT i.kind || ' ' || i.change || ' ' || i.detail FROM alert_items i
		JOIN outbox o ON o.id = i.outbox_id WHERE o.to_email = $1 ORDER BY i.id`, email)
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.t.Fatal(err)
	}
	return strings.Join(list, " | ")
}

func TestACMEKeyOfNoConfirmedAccountGets403(t *testing.T) {
	w := newACMEWorld(t)
	// A key fresh from "command apikey": never claimed.
	const fresh = "cccccccc-fresh-key-00000000000003"
	ref := store.KeyRef{Hash: sha256.Sum256([]byte(fresh)), Prefix: fresh[:8]}
	if err := w.db.CreateKey(context.Background(), store.NewKey{Key: ref, IP: netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	batch := event(proxyA, 1, "auth", invalidV) + event(proxyA, 2, "final", validV)
	code, body := w.post(fresh, batch)
	if code != http.StatusForbidden || !strings.Contains(body, "claimed API key of a confirmed account") {
		t.Fatalf("unclaimed key: %d %s", code, body)
	}
	// Claimed, but the account is not confirmed yet.
	w.exec(`WITH a AS (INSERT INTO accounts (email) VALUES ('new@example.net') RETURNING id)
		UPDATE api_keys SET account_id = (SELECT id FROM a) WHERE key_prefix = 'cccccccc'`)
	if code, body = w.post(fresh, batch); code != http.StatusForbidden {
		t.Fatalf("key of an unconfirmed account: %d %s", code, body)
	}
	if n := w.count(`SELECT (SELECT count(*) FROM acme_events) + (SELECT count(*) FROM domains) + (SELECT count(*) FROM mon_findings)`); n != 0 {
		t.Fatalf("%d rows written for refused keys", n)
	}
}

func TestACMEAnotherAccountCannotTouchTheOwnersFindings(t *testing.T) {
	w := newACMEWorld(t)
	w.owners()
	if code, body := w.post(keyA, event(proxyA, 1, "auth", invalidV)); code != 200 {
		t.Fatalf("owner's event: %d %s", code, body)
	}
	before := w.mailedTo("a@example.net")
	if !strings.HasPrefix(before, "acme_invalid opened") {
		t.Fatalf("the owner's own finding is mailed to the owner: %q", before)
	}
	// B reports a phishing "failure" for the owner's name, then a valid
	// order for it from its own proxy, then one from the owner's proxy id.
	batch := event("evil@proxy", 1, "auth", phishing) + event("evil@proxy", 2, "order", validV) +
		event(proxyA, 3, "new-order", `{"status":"pending","server":"ca.test","account":"/acct/9","domains":[{"type":"dns","value":"victim.example"}],
			"problem":{"type":"urn:ietf:params:acme:error:rateLimited","detail":"URGENT: call +1 555"}}`)
	if code, body := w.post(keyB, batch); code != 200 {
		t.Fatalf("B's batch: %d %s", code, body)
	}
	if got := w.mailedTo("a@example.net"); got != before {
		t.Fatalf("B's events reached A's mail:\n%q\nwas\n%q", got, before)
	}
	if n := w.count(`SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE t.name = 'victim.example' AND f.kind = 'acme_invalid' AND f.closed_at IS NULL AND f.detail LIKE '%refused%'`); n != 1 {
		t.Fatalf("A's open finding was changed or closed by B: %d left", n)
	}
	const raw = "account-page-token-of-a-0123456789"
	hash := store.HashToken(raw)
	w.exec(`INSERT INTO account_links (hash, account_id) SELECT $1, id FROM accounts WHERE email = 'a@example.net'`, hash[:])
	page, err := w.db.AccountPage(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%+v", page); strings.Contains(s, "URGENT") || strings.Contains(s, "acme_rate_limited") {
		t.Fatalf("B's data on A's page: %s", s)
	}
	activity, err := w.db.ACMEActivities(context.Background(), "a@example.net")
	if err != nil || len(activity) != 1 || activity[0].Proxy != proxyA || strings.Contains(activity[0].Error, "URGENT") {
		t.Fatalf("A's ACME activity: %+v, %v", activity, err)
	}
	// What B wrote is B's own, on one line.
	if got := w.mailedTo("b@example.net"); strings.Contains(got, "\n") {
		t.Fatalf("a detail kept its newlines: %q", got)
	}
}

func TestACMESquattedEventIDsDoNotDropTheOwnersEvents(t *testing.T) {
	w := newACMEWorld(t)
	w.owners()
	// B posts the owner's proxy identity and ids first.
	var squat string
	for id := 1; id <= 3; id++ {
		squat += event(proxyA, id, "new-order", `{"status":"pending","server":"ca.test","account":"/acct/9"}`)
	}
	if code, body := w.post(keyB, squat); code != 200 {
		t.Fatalf("B's batch: %d %s", code, body)
	}
	real := event(proxyA, 1, "new-order", `{"status":"pending","order":"/order/1","server":"ca.test","account":"/acct/1","domains":[{"type":"dns","value":"victim.example"}]}`) +
		event(proxyA, 2, "auth", invalidV) + event(proxyA, 3, "chall", `{"status":"pending"}`)
	code, body := w.post(keyA, real)
	if code != 200 || !strings.Contains(body, `"duplicates":0`) || !strings.Contains(body, `"stored":3`) {
		t.Fatalf("the owner's events: %d %s", code, body)
	}
	if !strings.HasPrefix(w.mailedTo("a@example.net"), "acme_invalid opened") {
		t.Fatalf("the owner's finding: %q", w.mailedTo("a@example.net"))
	}
	// B also holds the name and posts for it at the owner's proxy: the
	// owner's activity row stays the owner's.
	w.exec(`INSERT INTO domains (api_key_id, name, port, wildcard) SELECT id, 'victim.example', 443, false FROM api_keys WHERE key_prefix = $1`, keyB[:8])
	if code, body := w.post(keyB, event(proxyA, 10, "new-order", `{"status":"pending","order":"/order/b","server":"ca.test","account":"/acct/9","domains":[{"type":"dns","value":"victim.example"}]}`)); code != 200 {
		t.Fatalf("B's order: %d %s", code, body)
	}
	activity, err := w.db.ACMEActivities(context.Background(), "a@example.net")
	if err != nil || len(activity) != 1 || activity[0].Order != "/order/1" {
		t.Fatalf("A's activity was taken over: %+v, %v", activity, err)
	}
}

func TestACMEOversizeBatchIs413(t *testing.T) {
	w := newACMEWorld(t)
	w.owners()
	var many strings.Builder
	for id := 1; id <= DefaultACMELimits.MaxEvents+1; id++ {
		many.WriteString(event(proxyA, id, "chall", `{"status":"pending"}`))
	}
	if code, body := w.post(keyA, many.String()); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d events: %d %s", DefaultACMELimits.MaxEvents+1, code, body)
	}
	var names []string
	for i := 0; i <= DefaultACMELimits.MaxNames; i++ {
		names = append(names, fmt.Sprintf(`{"type":"dns","value":"n%d.example"}`, i))
	}
	wide := event(proxyA, 1, "new-order", `{"status":"pending","domains":[`+strings.Join(names, ",")+`]}`)
	if code, body := w.post(keyA, wide); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d names: %d %s", len(names), code, body)
	}
	if n := w.count(`SELECT (SELECT count(*) FROM acme_events) + (SELECT count(*) FROM acme_domains)`); n != 0 {
		t.Fatalf("%d rows written for refused batches", n)
	}
}

func TestACMEBudgetExhaustedIs429(t *testing.T) {
	w := newACMEWorld(t, ACMELimits{MaxEvents: 10, MaxNames: 10, RowsPerKeyHour: 20, MaxDomainsPerKey: 1000})
	w.owners()
	batch := func(from int) string {
		var b string
		for id := from; id < from+5; id++ { // 5 events naming victim.example: 10 rows
			b += event(proxyA, id, "new-order", `{"status":"pending","domains":[{"type":"dns","value":"victim.example"}]}`)
		}
		return b
	}
	for _, from := range []int{1, 6} {
		if code, body := w.post(keyA, batch(from)); code != 200 {
			t.Fatalf("within the budget: %d %s", code, body)
		}
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/v1/acme/events", strings.NewReader(batch(11)))
	req.Header.Set("Authorization", "Bearer "+keyA)
	w.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("past the budget: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if n := w.count(`SELECT count(*) FROM acme_events`); n != 10 {
		t.Fatalf("%d events stored, want the 10 within the budget", n)
	}
	// Another key's budget is its own.
	if code, body := w.post(keyB, event(proxyA, 1, "chall", `{"status":"pending"}`)); code != 200 {
		t.Fatalf("B: %d %s", code, body)
	}
}

func TestACMERequestWhoseClientLeavesCommitsNothing(t *testing.T) {
	w := newACMEWorld(t)
	w.owners()
	srv := httptest.NewServer(w.h)
	defer srv.Close()
	// Hold the owner's key row so that the batch's transaction waits.
	lock, err := w.conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(context.Background())
	if _, err := lock.Exec(context.Background(), `SELECT 1 FROM api_keys WHERE key_prefix = $1 FOR UPDATE`, keyA[:8]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/api/v1/acme/events",
			strings.NewReader(event(proxyA, 1, "new-order", `{"status":"pending","domains":[{"type":"dns","value":"victim.example"}]}`)+
				event(proxyA, 2, "final", `{"status":"valid","identifiers":[{"type":"dns","value":"issued.example"}]}`)))
		req.Header.Set("Authorization", "Bearer "+keyA)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waiting := `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`
	w.waitFor(waiting, func(n int) bool { return n > 0 })
	cancel()
	<-done
	// The server sees the client gone and gives the wait up; a write that
	// outlived its request would still be waiting for the lock.
	w.waitFor(waiting, func(n int) bool { return n == 0 })
	lock.Rollback(context.Background())
	srv.Close() // waits for the handler
	// ...and for any write that outlived it to finish.
	w.waitFor(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
		AND state IN ('active', 'idle in transaction')`, func(n int) bool { return n == 0 })
	if n := w.count(`SELECT (SELECT count(*) FROM acme_events) + (SELECT count(*) FROM domains WHERE name = 'issued.example')
		+ (SELECT count(*) FROM acme_domains)`); n != 0 {
		t.Fatalf("%d rows committed for a request whose client left", n)
	}
}

// waitFor polls a count until ok, for at most 5 seconds; past that the
// test goes on and its assertions say what happened.
func (w *acmeWorld) waitFor(sql string, ok func(int) bool) {
	w.t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if ok(w.count(sql)) {
			return
		}
	}
}

func TestACMERecordsTheClientAddress(t *testing.T) {
	w := newACMEWorld(t)
	w.owners()
	w.h = New(Deps{Tokens: w.db, Accounts: w.db, ACME: w.db, ACMELimits: DefaultACMELimits, Metrics: NewMetrics(nil, func() int { return 0 }, func() int { return 0 }), Log: zerolog.Nop(),
		Proxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	send := func(peer, forwarded string, id int) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/api/v1/acme/events", strings.NewReader(event(proxyA, id, "chall", `{"status":"pending"}`)))
		req.RemoteAddr = peer
		req.Header.Set("X-Forwarded-For", forwarded)
		req.Header.Set("Authorization", "Bearer "+keyA)
		w.h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", peer, rec.Code, rec.Body)
		}
	}
	send("127.0.0.1:5000", "203.0.113.7", 1)    // a trusted proxy: its client
	send("198.51.100.9:5000", "203.0.113.8", 2) // anyone else: the peer
	var got string
	w.conn.QueryRow(context.Background(), `SELECT string_agg(host(received_ip), ' ' ORDER BY id) FROM acme_events`).Scan(&got)
	if got != "203.0.113.7 198.51.100.9" {
		t.Fatalf("recorded %q", got)
	}
}

func TestACMEIssuedNamesKeepTheConfiguredDomainLimit(t *testing.T) {
	w := newACMEWorld(t, ACMELimits{MaxEvents: 10, MaxNames: 10, RowsPerKeyHour: 100, MaxDomainsPerKey: 2})
	w.owners() // A's key holds victim.example: one more fits
	code, body := w.post(keyA, event(proxyA, 1, "final", `{"status":"valid","identifiers":[{"type":"dns","value":"one.example"},{"type":"dns","value":"two.example"}]}`))
	if code != 200 || !strings.Contains(body, `"domains":1`) {
		t.Fatalf("%d %s", code, body)
	}
	if n := w.count(`SELECT count(*) FROM domains d JOIN api_keys k ON k.id = d.api_key_id WHERE k.key_prefix = $1`, keyA[:8]); n != 2 {
		t.Fatalf("the key holds %d domains, want its limit of 2", n)
	}
}

// A key that a stranger claimed onto A's confirmed account stays pending
// until A approves it: it may not post, and its names are not A's until
// then, so a pending key's domain cannot make B's events count for A.
func TestACMEPendingKeyOnAConfirmedAccountGets403(t *testing.T) {
	w := newACMEWorld(t)
	w.owners()
	const pending = "dddddddd-pending-key-000000000004"
	confirmedKey(t, w.db, w.url, pending, "a@example.net")
	w.exec(`UPDATE api_keys SET pending_at = now() WHERE key_prefix = 'dddddddd'`)
	if code, body := w.post(pending, event("evil@proxy", 1, "auth", phishing)); code != http.StatusForbidden {
		t.Fatalf("pending key: %d %s", code, body)
	}
	if n := w.count(`SELECT count(*) FROM acme_events`); n != 0 {
		t.Fatalf("%d events stored for a pending key", n)
	}
	// The pending key's own name is not held by A: A's events for it open nothing.
	w.exec(`INSERT INTO domains (api_key_id, name, port, wildcard) SELECT id, 'stranger.example', 443, false FROM api_keys WHERE key_prefix = 'dddddddd'`)
	strangerV := strings.ReplaceAll(invalidV, "victim.example", "stranger.example")
	if code, body := w.post(keyA, event(proxyA, 1, "auth", strangerV)); code != 200 {
		t.Fatalf("owner's event: %d %s", code, body)
	}
	if n := w.count(`SELECT count(*) FROM mon_findings`); n != 0 {
		t.Fatalf("%d findings on a pending key's name", n)
	}
}

// A line with a NUL character (which jsonb cannot store) is bad input, 400,
// not a database outage: keychest-amp then splits its batch and drops that
// line alone, instead of sending the same batch again for ever.
func TestACMENULCharacterIs400(t *testing.T) {
	w := newACMEWorld(t)
	w.owners()
	nul := `{"status":"pending","identifiers":[{"type":"dns","value":"a\u0000"}]}`
	code, body := w.post(keyA, event(proxyA, 1, "new-order", nul))
	if code != http.StatusBadRequest {
		t.Fatalf("NUL: %d %s, want 400", code, body)
	}
	if code, body := w.post(keyA, event(proxyA, 2, "auth", invalidV)); code != 200 {
		t.Fatalf("next batch: %d %s", code, body)
	}
}
