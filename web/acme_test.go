// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

func postEvents(h http.Handler, key, body string) (int, string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/v1/acme/events", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func envelope(id int, msg, params string) string {
	return fmt.Sprintf(`{"msg":%q,"params":%s,"time":"2026-11-23 10:00:00","proxy":"p1@amp.keychest.net","id":%d,"host":"h","ip":"127.0.0.1","version":"v","backlog":0,"log_time":"2026-11-23 10:00:01"}`+"\n", msg, params, id)
}

// confirmedKey makes key a key of the confirmed account of email: the
// only keys that may post ACME events.
func confirmedKey(t testing.TB, db *store.Postgres, url, key, email string) store.KeyRef {
	t.Helper()
	ref := store.KeyRef{Hash: sha256.Sum256([]byte(key)), Prefix: key[:8]}
	if err := db.CreateKey(context.Background(), store.NewKey{Key: ref, IP: netip.MustParseAddr("127.0.0.1")}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `WITH a AS (INSERT INTO accounts (email, confirmed_at) VALUES ($1, now())
			ON CONFLICT (email) DO UPDATE SET confirmed_at = now() RETURNING id)
		UPDATE api_keys SET account_id = (SELECT id FROM a) WHERE key_hash = $2`, email, ref.Hash[:]); err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestACMEEventsAreStoredOnceAndIssuedDomainsAdded(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db, err := store.Open(context.Background(), url, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const key = "aaaaaaaa-bbbbbbbb-cccccccc-dddddddd-eeeeeeee"
	confirmedKey(t, db, url, key, "owner@example.net")
	h := New(Deps{Tokens: db, Accounts: db, ACME: db, ACMELimits: DefaultACMELimits, Metrics: NewMetrics(nil, func() int { return 0 }, func() int { return 0 }), Log: zerolog.Nop()})

	batch := envelope(1, "new-order", `{"status":"pending","domains":[{"type":"dns","value":"a.example"}]}`) +
		envelope(2, "chall", `{"status":"invalid","error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused"}}`) +
		envelope(3, "final", `{"status":"valid","identifiers":[{"type":"dns","value":"A.example"},{"type":"dns","value":"*.b.example"},{"type":"ip","value":"127.0.0.1"}]}`)
	code, body := postEvents(h, key, batch)
	if code != 200 || body != `{"domains":2,"duplicates":0,"stored":3}`+"\n" {
		t.Fatalf("first batch: %d %s", code, body)
	}
	// The batch again, and one more event: nothing doubled.
	code, body = postEvents(h, key, batch+envelope(4, "order", `{"status":"valid","identifiers":[{"type":"dns","value":"a.example"}]}`))
	if code != 200 || body != `{"domains":0,"duplicates":3,"stored":1}`+"\n" {
		t.Fatalf("resent batch: %d %s", code, body)
	}
	conn, _ := pgx.Connect(context.Background(), url)
	defer conn.Close(context.Background())
	var n int
	var domains, failed string
	conn.QueryRow(context.Background(), `SELECT count(*) FROM acme_events`).Scan(&n)
	conn.QueryRow(context.Background(), `SELECT string_agg(name || ':' || wildcard, ' ' ORDER BY name) FROM domains`).Scan(&domains)
	conn.QueryRow(context.Background(), `SELECT params->'error'->>'detail' FROM acme_events WHERE msg = 'chall' AND params->>'status' = 'invalid'`).Scan(&failed)
	if n != 4 || domains != "*.b.example:true a.example:false" || failed != "refused" {
		t.Errorf("rows %d, domains %q, failed %q", n, domains, failed)
	}
	for _, c := range []struct {
		key, body string
		want      int
	}{
		{"", batch, 401},
		{"zzzzzzzz-unknown-key-000000", batch, 401},
		{"short", batch, 401},
		{key, "not json\n", 400},
		{key, `{"msg":"order","params":{},"proxy":"p","id":0}` + "\n", 400},
		{key, "", 400},
	} {
		if code, body := postEvents(h, c.key, c.body); code != c.want {
			t.Errorf("key %q body %q: %d %s, want %d", c.key, c.body, code, body, c.want)
		}
	}
	conn.Exec(context.Background(), `UPDATE api_keys SET revoked_at = now()`)
	if code, _ := postEvents(h, key, batch); code != 401 {
		t.Errorf("revoked key: %d", code)
	}
}

// An identifier with a port or a scheme never registers a domain: an
// ACME proxy's report cannot add a target on a port the line port refuses.
func TestACMEIdentifierWithPortAddsNothing(t *testing.T) {
	w := newACMEWorld(t)
	confirmedKey(t, w.db, w.url, keyA, "owner@example.net")
	batch := envelope(1, "final", `{"status":"valid","identifiers":[{"type":"dns","value":"victim.example:6379"},{"type":"dns","value":"https://b.example"},{"type":"dns","value":"c.example"}]}`)
	if code, body := w.post(keyA, batch); code != 200 {
		t.Fatalf("post: %d %s", code, body)
	}
	if n := w.count(`SELECT count(*) FROM domains WHERE (name, port) <> ('c.example', 443)`); n != 0 {
		t.Errorf("%d domains besides c.example:443", n)
	}
	if n := w.count(`SELECT count(*) FROM domains`); n != 1 {
		t.Errorf("%d domains, want c.example:443 only", n)
	}
}
