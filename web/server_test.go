// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/store"
)

// fakeTokens knows one confirm token, "good", and counts its uses.
type fakeTokens struct {
	used int
	down bool
	by   netip.Addr // the client address of the last use
}

func (f *fakeTokens) LookupToken(_ context.Context, action, raw string) (store.TokenInfo, error) {
	if action != "confirm" || raw != "good" {
		return store.TokenInfo{}, store.ErrTokenUnknown
	}
	if f.used > 0 {
		return store.TokenInfo{}, store.ErrTokenUsed
	}
	return store.TokenInfo{Action: action, Email: "o@example.com", Domains: 2, KeyPrefix: "0123abcd", KeyDomains: 1}, nil
}

func (f *fakeTokens) UseToken(ctx context.Context, action, raw string, by netip.Addr) (store.TokenInfo, error) {
	f.by = by
	info, err := f.LookupToken(ctx, action, raw)
	if err == nil {
		f.used++
	}
	return info, err
}

func (f *fakeTokens) Ping(context.Context) error {
	if f.down {
		return store.ErrUnavailable
	}
	return nil
}

func serve(h http.Handler, method, path string) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Code, rec.Body.String()
}

func TestLinkPages(t *testing.T) {
	tokens := &fakeTokens{}
	h := New(Deps{Tokens: tokens, Metrics: NewMetrics(nil, func() int { return 0 }, func() int { return 0 }), Log: zerolog.Nop()})
	code, body := serve(h, "GET", "/confirm/good")
	if code != 200 || !strings.Contains(body, "its API key 0123abcd...? KeyChest then starts watching the certificates of the key&#39;s 1 domain.") || !strings.Contains(body, `<form method="post">`) || tokens.used != 0 {
		t.Fatalf("GET: %d used=%d\n%s", code, tokens.used, body)
	}
	if code, body = serve(h, "POST", "/confirm/good"); code != 200 || !strings.Contains(body, "is confirmed") || tokens.used != 1 {
		t.Fatalf("POST: %d used=%d\n%s", code, tokens.used, body)
	}
	for path, want := range map[string]int{"/confirm/good": 410, "/confirm/bad": 404, "/block/good": 404, "/launch/good": 404} {
		if code, _ := serve(h, "GET", path); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
	// Text from the store is escaped.
	if _, body := serve(h, "GET", "/confirm/<script>"); strings.Contains(body, "<script>") {
		t.Error("unescaped input in a page")
	}
}

// With metrics nil (KEYCHEST_METRICS_LISTEN serves them apart) the web
// listener has no /metrics; MetricsOnly serves /metrics and nothing else.
func TestMetricsApart(t *testing.T) {
	m := NewMetrics(nil, func() int { return 0 }, func() int { return 0 })
	if code, _ := serve(New(Deps{Tokens: &fakeTokens{}, Log: zerolog.Nop()}), "GET", "/metrics"); code != 404 {
		t.Fatalf("web /metrics without metrics: %d", code)
	}
	apart := MetricsOnly(m.Registry)
	if code, body := serve(apart, "GET", "/metrics"); code != 200 || !strings.Contains(body, "keychest_connections_open") {
		t.Fatalf("MetricsOnly /metrics: %d", code)
	}
	for _, path := range []string{"/healthz", "/confirm/good"} {
		if code, _ := serve(apart, "GET", path); code != 404 {
			t.Errorf("MetricsOnly %s: %d", path, code)
		}
	}
}

func TestHealthz(t *testing.T) {
	tokens := &fakeTokens{}
	h := New(Deps{Tokens: tokens, Metrics: NewMetrics(nil, func() int { return 0 }, func() int { return 0 }), Log: zerolog.Nop()})
	if code, body := serve(h, "GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("%d %q", code, body)
	}
	tokens.down = true
	if code, _ := serve(h, "GET", "/healthz"); code != 503 {
		t.Fatalf("database down: %d", code)
	}
}

// Verbs a client makes up are counted as "other": no label per made-up verb.
func TestMetricsBoundLabels(t *testing.T) {
	m := NewMetrics([]string{"add"}, func() int { return 3 }, func() int { return 0 })
	m.ObserveCommand("add", 200, time.Millisecond)
	m.ObserveCommand("x-made-up-1", 400, time.Millisecond)
	m.ObserveCommand("x-made-up-2", 400, time.Millisecond)
	if n := testutil.CollectAndCount(m.commands); n != 2 {
		t.Fatalf("%d series, want 2", n)
	}
	if v := testutil.ToFloat64(m.commands.WithLabelValues("other", "400")); v != 2 {
		t.Fatalf("other: %v", v)
	}
}

// New serves the account page and the ACME endpoint when Deps gives their
// stores, and leaves them out when it does not.
func TestNewServesWhatDepsGive(t *testing.T) {
	pages := &fakePages{view: pageFixture(time.Now())}
	with := New(Deps{Tokens: pages, Accounts: pages, Log: zerolog.Nop()})
	if code, body := serve(with, "GET", "/account/good"); code != 200 || !strings.Contains(body, pages.view.Email) {
		t.Fatalf("account page with Accounts: %d", code)
	}
	without := New(Deps{Tokens: pages, Log: zerolog.Nop()})
	if code, _ := serve(without, "GET", "/account/good"); code != 404 {
		t.Fatalf("account page without Accounts: %d", code)
	}
	if code, _ := serve(without, "POST", "/api/v1/acme/events"); code != 404 && code != 405 {
		t.Fatalf("ACME endpoint without ACME: %d", code)
	}
}
