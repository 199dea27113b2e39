// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/acme"
	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/store"
)

// acmeWorld is a database with one confirmed account whose proxy key
// holds a.example and b.example, and a clock for events.
type acmeWorld struct {
	t   *testing.T
	p   *store.Postgres
	sql *pgx.Conn
	key store.KeyRef
	at  time.Time
}

func newACMEWorld(t *testing.T) *acmeWorld {
	p, url := open(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	w := &acmeWorld{t: t, p: p, sql: conn, key: ref("amp-proxy-key-0123456789"), at: time.Now().UTC().Truncate(time.Second)}
	w.exec(`INSERT INTO accounts (email, confirmed_at) VALUES ('owner@example.net', now())`)
	w.exec(`INSERT INTO api_keys (key_hash, key_prefix, origin, account_id) SELECT $1, $2, 'server', id FROM accounts`, w.key.Hash[:], w.key.Prefix)
	for _, n := range []string{"a.example", "b.example"} {
		w.exec(`INSERT INTO domains (api_key_id, name, port, wildcard) SELECT id, $1, 443, false FROM api_keys`, n)
	}
	return w
}

func (w *acmeWorld) exec(sql string, args ...any) {
	w.t.Helper()
	if _, err := w.sql.Exec(context.Background(), sql, args...); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

func (w *acmeWorld) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.sql.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// ev is event id of proxy p1, a second after the previous one, from ACME
// account /acct/1 at ca.test.
func (w *acmeWorld) ev(id int64, msg, params string) store.ACMEEvent {
	w.at = w.at.Add(time.Second)
	var m map[string]any
	if err := json.Unmarshal([]byte(params), &m); err != nil {
		w.t.Fatal(err)
	}
	m["server"], m["account"] = "ca.test", "/acct/1"
	raw, _ := json.Marshal(m)
	return store.ACMEEvent{Event: acme.Event{Proxy: "p1@amp.test", ID: id, Msg: msg, Time: w.at, Params: raw, Envelope: json.RawMessage(`{}`)}}
}

func (w *acmeWorld) store(events ...store.ACMEEvent) store.ACMEStored {
	w.t.Helper()
	res, err := w.p.StoreACMEEvents(context.Background(), store.ACMEBatch{Key: w.key, IP: ip, Events: events})
	if err != nil {
		w.t.Fatal(err)
	}
	return res
}

// findings lists the findings of kind as "name state severity", oldest first.
func (w *acmeWorld) findings(kind string) string {
	w.t.Helper()
	rows, _ := w.sql.Query(context.Background(), `SELECT t.name || ' ' || CASE WHEN f.closed_at IS NULL THEN 'open' ELSE 'closed' END
			|| ' ' || f.severity FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id WHERE f.kind = $1 ORDER BY f.id`, kind)
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.t.Fatal(err)
	}
	return strings.Join(list, ", ")
}

// mailed lists the alert items of kind as "target change", oldest first.
func (w *acmeWorld) mailed(kind string) string {
	w.t.Helper()
	rows, _ := w.sql.Query(context.Background(), `SELECT target || ' ' || change FROM alert_items WHERE kind = $1 ORDER BY id`, kind)
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		w.t.Fatal(err)
	}
	return strings.Join(list, ", ")
}

func (w *acmeWorld) checkRenewals(now time.Time) []store.ACMEChange {
	w.t.Helper()
	ch, err := w.p.CheckRenewals(context.Background(), now)
	if err != nil {
		w.t.Fatal(err)
	}
	return ch
}

// enterWarning does what the monitor does when name's certificate enters
// its warning window at since: the target's state, an expiry finding.
func (w *acmeWorld) enterWarning(name string, since time.Time) {
	w.exec(`INSERT INTO mon_targets (name, port, state, last_checked_at) VALUES ($1, 443, 'warning', now())
		ON CONFLICT (name, port) WHERE public DO UPDATE SET state = 'warning'`, name)
	w.exec(`INSERT INTO mon_findings (target_id, kind, severity, detail, opened_at, raised_at)
		SELECT id, 'expiry', 'warning', 'expires soon', $2, $2 FROM mon_targets WHERE name = $1`, name, since)
}

const (
	orderA   = `{"status":"pending","order":"/order/1","domains":[{"type":"dns","value":"a.example"}]}`
	invalidA = `{"status":"invalid","identifier":{"type":"dns","value":"a.example"},
		"error":{"type":"urn:ietf:params:acme:error:connection","detail":"127.0.0.1: Connection refused"}}`
	validA = `{"status":"valid","order":"/order/1","identifiers":[{"type":"dns","value":"A.example"}]}`
)

func TestACMEInvalidAuthorizationIsAFindingUntilAValidOrder(t *testing.T) {
	w := newACMEWorld(t)
	res := w.store(w.ev(1, "new-order", orderA), w.ev(2, "auth", invalidA),
		w.ev(3, "chall", `{"status":"invalid","type":"http-01","via":"authz","identifier":{"type":"dns","value":"a.example"},
			"error":{"type":"urn:ietf:params:acme:error:connection","detail":"127.0.0.1: Connection refused"}}`))
	if res.Stored != 3 || w.findings(finding.KindACMEInvalid) != "a.example open warning" {
		t.Fatalf("stored %d, findings %q, changes %+v", res.Stored, w.findings(finding.KindACMEInvalid), res.Findings)
	}
	open, err := w.p.Findings(context.Background(), true, "owner@example.net")
	if err != nil || len(open) != 1 || !strings.Contains(open[0].Detail, "http-01 challenge went invalid at ca.test: connection: 127.0.0.1: Connection refused") {
		t.Fatalf("findings of the owner: %+v, %v", open, err)
	}
	if got := w.mailed(finding.KindACMEInvalid); got != "a.example:443 opened" {
		t.Fatalf("the authorization and its challenge are one alert, got %q", got)
	}
	res = w.store(w.ev(4, "final", validA))
	if w.findings(finding.KindACMEInvalid) != "a.example closed warning" || w.mailed(finding.KindACMEInvalid) != "a.example:443 opened, a.example:443 resolved" {
		t.Fatalf("after a valid order: %q, mailed %q", w.findings(finding.KindACMEInvalid), w.mailed(finding.KindACMEInvalid))
	}
	if len(res.Findings) != 1 || res.Findings[0].Change != "closed" {
		t.Fatalf("changes: %+v", res.Findings)
	}
}

func TestACMEResentBatchesNeitherDoubleNorReopen(t *testing.T) {
	w := newACMEWorld(t)
	failing := []store.ACMEEvent{w.ev(1, "new-order", orderA), w.ev(2, "auth", invalidA)}
	valid := []store.ACMEEvent{w.ev(3, "final", validA)}
	w.store(failing...)
	if res := w.store(failing...); res.Stored != 0 || len(res.Findings) != 0 {
		t.Fatalf("resent failing batch: %+v", res)
	}
	w.store(valid...)
	// The failing batch once more, after the order that closed its finding,
	// and the valid one: nothing changes.
	for _, batch := range [][]store.ACMEEvent{failing, valid, append(failing, valid...)} {
		if res := w.store(batch...); res.Stored != 0 || len(res.Findings) != 0 {
			t.Fatalf("resent batch: %+v", res)
		}
	}
	if w.findings(finding.KindACMEInvalid) != "a.example closed warning" || w.mailed(finding.KindACMEInvalid) != "a.example:443 opened, a.example:443 resolved" {
		t.Fatalf("findings %q, mailed %q", w.findings(finding.KindACMEInvalid), w.mailed(finding.KindACMEInvalid))
	}
	if n := w.count(`SELECT count(*) FROM acme_events`); n != 3 {
		t.Fatalf("%d events stored", n)
	}
}

func TestACMERateLimitedOnTheOrdersDomains(t *testing.T) {
	w := newACMEWorld(t)
	w.store(w.ev(1, "new-order", `{"domains":[{"type":"dns","value":"a.example"},{"type":"dns","value":"*.b.example"},{"type":"dns","value":"no such/name"}],
		"problem":{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates already issued"}}`))
	if got := w.findings(finding.KindACMERateLimited); got != "a.example open warning, b.example open warning" {
		t.Fatalf("rate limit: %q", got)
	}
	// A rate limit named only in a subproblem counts too.
	w.exec(`INSERT INTO domains (api_key_id, name, port, wildcard) SELECT id, 'c.example', 443, false FROM api_keys`)
	w.store(w.ev(2, "new-order", `{"problem":{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no",
		"subproblems":[{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many","identifier":{"type":"dns","value":"c.example"}}]}}`))
	if got := w.findings(finding.KindACMERateLimited); !strings.HasSuffix(got, "c.example open warning") {
		t.Fatalf("subproblem: %q", got)
	}
	activity, err := w.p.ACMEActivities(context.Background(), "owner@example.net")
	if err != nil || len(activity) != 3 || activity[0].OrderStatus != "error" || !strings.Contains(activity[0].Error, "rejectedIdentifier") {
		t.Fatalf("activity: %+v, %v", activity, err)
	}
}

func TestACMEBadNonceStorm(t *testing.T) {
	w := newACMEWorld(t)
	w.store(w.ev(1, "new-order", orderA))
	badNonce := func(id int64) store.ACMEEvent {
		return w.ev(id, "order", `{"problem":{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce"}}`)
	}
	var batch []store.ACMEEvent
	for id := int64(2); id < 2+acme.BadNonceStorm-1; id++ {
		batch = append(batch, badNonce(id))
	}
	w.store(batch...)
	if got := w.findings(finding.KindACMEBadNonce); got != "" {
		t.Fatalf("below the threshold: %q", got)
	}
	w.store(badNonce(100))
	if got := w.findings(finding.KindACMEBadNonce); got != "a.example open warning" {
		t.Fatalf("storm: %q", got)
	}
	if got := w.findings(finding.KindACMEAccountFailing); got != "" {
		t.Fatalf("badNonce is not an account failure: %q", got)
	}
}

func TestACMEAccountFailingRepeatedly(t *testing.T) {
	w := newACMEWorld(t)
	w.store(w.ev(1, "new-order", orderA))
	fail := func(id int64) store.ACMEEvent {
		return w.ev(id, "new-order", `{"domains":[{"type":"dns","value":"b.example"}],
			"problem":{"type":"urn:ietf:params:acme:error:unauthorized","detail":"account is not authorized"}}`)
	}
	for id := int64(2); id < 2+acme.AccountFailures-1; id++ {
		w.store(fail(id))
	}
	if got := w.findings(finding.KindACMEAccountFailing); got != "" {
		t.Fatalf("below the threshold: %q", got)
	}
	w.store(fail(50))
	if got := w.findings(finding.KindACMEAccountFailing); got != "a.example open warning, b.example open warning" {
		t.Fatalf("failing account: %q", got)
	}
	w.store(w.ev(51, "order", `{"status":"valid","identifiers":[{"type":"dns","value":"a.example"},{"type":"dns","value":"b.example"}]}`))
	w.store(fail(52))
	if got := w.findings(finding.KindACMEAccountFailing); got != "a.example closed warning, b.example closed warning" {
		t.Fatalf("a valid order closes it, and the count starts again: %q", got)
	}
}

func TestACMENotRenewing(t *testing.T) {
	w := newACMEWorld(t)
	w.at = w.at.Add(-10 * 24 * time.Hour)
	w.store(w.ev(1, "new-order", orderA), w.ev(2, "final", validA))
	now := time.Now()
	w.enterWarning("a.example", now.Add(-acme.RenewalGrace/2))
	if ch := w.checkRenewals(now); len(ch) != 0 {
		t.Fatalf("within the grace: %+v", ch)
	}
	w.exec(`UPDATE mon_findings SET opened_at = $1 WHERE kind = 'expiry'`, now.Add(-acme.RenewalGrace-time.Hour))
	w.enterWarning("b.example", now.Add(-acme.RenewalGrace-time.Hour)) // never ordered through a proxy: not ours to judge
	w.checkRenewals(now)
	if got := w.findings(finding.KindACMENotRenewing); got != "a.example open warning" || w.mailed(finding.KindACMENotRenewing) != "a.example:443 opened" {
		t.Fatalf("not renewing: %q, mailed %q", got, w.mailed(finding.KindACMENotRenewing))
	}
	// It rises with the expiry finding, once.
	w.exec(`UPDATE mon_findings SET severity = 'critical' WHERE kind = 'expiry'`)
	for range 2 {
		w.checkRenewals(now)
	}
	if got := w.mailed(finding.KindACMENotRenewing); got != "a.example:443 opened, a.example:443 raised" {
		t.Fatalf("raised: %q", got)
	}
	// An order for it is an attempt: closed, and the next check keeps it so.
	w.at = time.Now()
	w.store(w.ev(3, "new-order", orderA))
	w.checkRenewals(time.Now())
	if got := w.findings(finding.KindACMENotRenewing); got != "a.example closed critical" {
		t.Fatalf("after an order: %q", got)
	}
}

func TestACMENotRenewingClosesWhenTheWindowIsLeft(t *testing.T) {
	w := newACMEWorld(t)
	w.at = w.at.Add(-10 * 24 * time.Hour)
	w.store(w.ev(1, "new-order", orderA))
	now := time.Now()
	w.enterWarning("a.example", now.Add(-acme.RenewalGrace-time.Hour))
	w.checkRenewals(now)
	// Renewed by other means: the monitor closed its expiry finding.
	w.exec(`UPDATE mon_findings SET closed_at = $1 WHERE kind = 'expiry'`, now)
	w.exec(`UPDATE mon_targets SET state = 'ok'`)
	ch := w.checkRenewals(now)
	if len(ch) != 1 || w.findings(finding.KindACMENotRenewing) != "a.example closed warning" {
		t.Fatalf("changes %+v; findings %q", ch, w.findings(finding.KindACMENotRenewing))
	}
	if got := w.mailed(finding.KindACMENotRenewing); got != "a.example:443 opened, a.example:443 resolved" {
		t.Fatalf("mailed %q", got)
	}
}

func TestMonitorLeavesACMEFindingsAlone(t *testing.T) {
	w := newACMEWorld(t)
	w.store(w.ev(1, "auth", invalidA))
	w.exec(`UPDATE mon_targets SET next_due = now() - interval '1 minute'`)
	now := time.Now()
	leased, err := w.p.Lease(context.Background(), "m1", now, now.Add(time.Minute), 10)
	if err != nil || len(leased) != 1 {
		t.Fatalf("lease: %+v, %v", leased, err)
	}
	if len(leased[0].Open) != 0 {
		t.Fatalf("the judge would close what it did not open: %+v", leased[0].Open)
	}
	if got := fmt.Sprint(w.findings(finding.KindACMEInvalid)); got != "a.example open warning" {
		t.Fatalf("findings %q", got)
	}
}

// A second owner of a.example, whose own proxy never ordered it, is not
// told the first owner's proxy data, and its own events change nothing of
// the first owner's findings (issue 20).
func TestACMEFindingsAreTheirAccountsOnly(t *testing.T) {
	w := newACMEWorld(t)
	other := ref("other-proxy-key-0123456789")
	w.exec(`INSERT INTO accounts (email, confirmed_at) VALUES ('second@example.net', now())`)
	w.exec(`INSERT INTO api_keys (key_hash, key_prefix, origin, account_id) SELECT $1, $2, 'server', id FROM accounts
		WHERE email = 'second@example.net'`, other.Hash[:], other.Prefix)
	w.exec(`INSERT INTO domains (api_key_id, name, port, wildcard) SELECT id, 'a.example', 443, false FROM api_keys WHERE key_prefix = $1`, other.Prefix)
	w.at = w.at.Add(-10 * 24 * time.Hour)
	w.store(w.ev(1, "new-order", orderA), w.ev(2, "auth", invalidA))
	// The second owner's proxy reports a valid order for the name.
	valid := w.ev(1, "final", validA)
	valid.Proxy = "p2@amp.test"
	if _, err := w.p.StoreACMEEvents(context.Background(), store.ACMEBatch{Key: other, IP: ip, Events: []store.ACMEEvent{valid}}); err != nil {
		t.Fatal(err)
	}
	if got := w.findings(finding.KindACMEInvalid); got != "a.example open warning" {
		t.Fatalf("the first owner's finding: %q", got)
	}
	now := time.Now()
	w.enterWarning("a.example", now.Add(-acme.RenewalGrace-time.Hour))
	w.checkRenewals(now)
	rows, _ := w.sql.Query(context.Background(), `SELECT o.to_email || ' ' || i.kind FROM alert_items i JOIN outbox o ON o.id = i.outbox_id ORDER BY i.id`)
	mailed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(mailed, ", "); got != "owner@example.net acme_invalid, owner@example.net acme_not_renewing, second@example.net acme_not_renewing" {
		t.Fatalf("mailed: %q", got)
	}
	second, err := w.p.Findings(context.Background(), true, "second@example.net")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range second {
		if f.Kind == finding.KindACMEInvalid || strings.Contains(f.Detail, "p1@amp.test") {
			t.Fatalf("the first owner's finding shows to the second: %+v", f)
		}
	}
}

// The renewal check judges only names the account still holds, through a
// working key: once the name is removed, or the key revoked, no
// acme_not_renewing finding opens for it (review).
func TestACMENotRenewingOnlyForNamesTheAccountHolds(t *testing.T) {
	for _, undo := range []string{
		`DELETE FROM domains WHERE name = 'a.example'`,
		`UPDATE api_keys SET revoked_at = now()`,
		`UPDATE accounts SET blocked_at = now()`,
	} {
		w := newACMEWorld(t)
		w.at = w.at.Add(-10 * 24 * time.Hour)
		w.store(w.ev(1, "new-order", orderA), w.ev(2, "final", validA))
		now := time.Now()
		w.enterWarning("a.example", now.Add(-acme.RenewalGrace-time.Hour))
		w.exec(undo)
		w.checkRenewals(now)
		if got := w.findings(finding.KindACMENotRenewing); got != "" {
			t.Errorf("after %s: %q", undo, got)
		}
	}
}
