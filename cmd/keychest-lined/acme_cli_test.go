// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/acme"
	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

// "acme" lists each domain's last order and error, and the finding a
// failed authorization raised is among "findings".
func TestCLIACMEActivityAndFindings(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	conn := connect(t, url)
	key := store.KeyRef{Hash: sha256.Sum256([]byte("acme-cli-key-0123456789")), Prefix: "acme-cli"}
	for _, sql := range []string{
		`INSERT INTO accounts (email, confirmed_at) VALUES ('ops@example.com', now())`,
		`INSERT INTO api_keys (key_hash, key_prefix, origin, account_id) SELECT $1, 'acme-cli', 'server', id FROM accounts`,
		`INSERT INTO domains (api_key_id, name, port, wildcard) SELECT id, 'www.example.com', 443, false FROM api_keys`,
	} {
		args := []any{}
		if strings.Contains(sql, "$1") {
			args = append(args, key.Hash[:])
		}
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	db, err := store.Open(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	ev := func(id int64, msg, params string) store.ACMEEvent {
		return store.ACMEEvent{Event: acme.Event{Proxy: "p@amp", ID: id, Msg: msg, Time: at.Add(time.Duration(id) * time.Minute), Params: json.RawMessage(params), Envelope: json.RawMessage(`{}`)}}
	}
	_, err = db.StoreACMEEvents(ctx, store.ACMEBatch{Key: key, IP: netip.MustParseAddr("127.0.0.1"), Events: []store.ACMEEvent{
		ev(1, "new-order", `{"status":"pending","order":"/order/7","server":"ca.test","account":"/acct/1","domains":[{"type":"dns","value":"www.example.com"}]}`),
		ev(2, "auth", `{"status":"invalid","server":"ca.test","account":"/acct/1","identifier":{"type":"dns","value":"www.example.com"},
			"error":{"type":"urn:ietf:params:acme:error:connection","detail":"Connection refused"}}`),
	}})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, url, "acme")
	if code != 0 || !strings.Contains(out, "www.example.com  2026-11-23 10:01  pending") ||
		!strings.Contains(out, "connection: Connection refused  2026-11-23 10:02  p@amp") {
		t.Fatalf("acme: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli(t, url, "acme", "--email", "nobody@example.com", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("another account's: exit %d %q", code, out)
	}
	code, out, _ = cli(t, url, "findings", "--open", "--email", "ops@example.com")
	if code != 0 || !strings.Contains(out, "www.example.com:443  acme_invalid  warning") {
		t.Fatalf("findings: exit %d\n%s", code, out)
	}
}
