// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// cert and check, for a pending, an active, an unknown and a revoked key.
func TestCertAndCheck(t *testing.T) {
	e := newEnv(t, 1000)
	key := e.do(t, "command apikey").Data
	e.do(t, "command claim apikey "+key+" email owner@example.com")
	expect(t, e.do(t, "command add domain watched.example apikey "+key), 200, "pending")
	r := e.do(t, "command cert domain watched.example apikey "+key)
	if r.Code != 200 || r.Data != "state=pending expires=- days=- issuer=- addresses=0 checked=- finding=- class=-" {
		t.Fatalf("pending: %d %q", r.Code, r.Data)
	}
	expect(t, e.do(t, "command check domain watched.example apikey "+key), 409, "pending until the owner confirms by mail")

	if _, err := e.db.Exec(t.Context(), `WITH a AS (UPDATE accounts SET confirmed_at = now()) UPDATE api_keys SET pending_at = NULL`); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "command cert domain watched.example apikey "+key); !strings.HasPrefix(r.Data, "state=unknown ") {
		t.Fatalf("active, never probed: %q", r.Data)
	}
	expect(t, e.do(t, "command check domain watched.example apikey "+key), 200, "check queued")
	if n := e.count(t, `SELECT count(*) FROM mon_targets WHERE name = 'watched.example' AND next_due <= now()`); n != 1 {
		t.Fatal("check did not make the target due")
	}
	expect(t, e.do(t, "command cert domain other.example apikey "+key), 404, "not registered for this apikey")
	expect(t, e.do(t, "command check domain other.example apikey "+key), 404, "not registered for this apikey")
	expect(t, e.do(t, "command cert domain watched.example apikey unknown-key-0123456789"), 401, "unknown apikey")
	if r := e.do(t, "command status apikey "+key); !strings.HasSuffix(r.Data, " problems=0") {
		t.Fatalf("status %q", r.Data)
	}

	if _, err := e.db.Exec(t.Context(), `UPDATE mon_targets SET state = 'critical', last_checked_at = now()`); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "command status apikey "+key); !strings.HasSuffix(r.Data, " problems=1") {
		t.Fatalf("status with a problem %q", r.Data)
	}
	if r := e.do(t, "command cert domain watched.example apikey "+key); !strings.HasPrefix(r.Data, "state=critical ") {
		t.Fatalf("critical: %q", r.Data)
	}
	if _, err := e.db.Exec(t.Context(), `UPDATE api_keys SET revoked_at = now()`); err != nil {
		t.Fatal(err)
	}
	expect(t, e.do(t, "command cert domain watched.example apikey "+key), 403, "revoked")
}

func TestCertLine(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	for _, c := range []struct {
		s    store.CertStatus
		want string
	}{
		{store.CertStatus{State: "unknown"}, "state=unknown expires=- days=- issuer=- addresses=0 checked=- finding=- class=-"},
		{store.CertStatus{State: "unknown", Class: "timeout", Addresses: 1, Checked: at(0)},
			"state=unknown expires=- days=- issuer=- addresses=1 checked=2026-11-23T12:00:00Z finding=- class=timeout"},
		{store.CertStatus{State: "ok", Expires: at(60*24*time.Hour + time.Hour), IssuerCN: "Pebble Intermediate CA 1a2b",
			Addresses: 2, Checked: at(-time.Minute)},
			"state=ok expires=2027-01-22T13:00:00Z days=60 issuer=Pebble_Intermediate_CA_1a2b addresses=2 checked=2026-11-23T11:59:00Z finding=- class=-"},
		{store.CertStatus{State: "critical", Expires: at(-time.Hour), IssuerCN: "a=b\tc", Addresses: 1, Checked: at(0),
			Findings: []string{"expiry", "stale_endpoint"}, Class: "expired"},
			"state=critical expires=2026-11-23T11:00:00Z days=-1 issuer=a_b_c addresses=1 checked=2026-11-23T12:00:00Z finding=expiry,stale_endpoint class=expired"},
	} {
		if got := CertLine(c.s, now); got != c.want {
			t.Errorf("CertLine\n got %q\nwant %q", got, c.want)
		}
	}
}
