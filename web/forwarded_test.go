// SPDX-License-Identifier: Apache-2.0

package web

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/clientnet"
)

func TestClientAddr(t *testing.T) {
	trusted, _ := clientnet.ParseNets("10.0.0.0/8,2001:db8:ffff::/48")
	for _, c := range []struct {
		peer, xff, want string
	}{
		{"198.51.100.9:1", "203.0.113.5", "198.51.100.9"},            // not a proxy: header ignored
		{"10.0.0.1:1", "", "10.0.0.1"},                               // a proxy that passed nothing on
		{"10.0.0.1:1", "203.0.113.5", "203.0.113.5"},                 // one proxy
		{"10.0.0.1:1", "6.6.6.6, 203.0.113.5", "203.0.113.5"},        // the client's own header is not believed
		{"10.0.0.1:1", "203.0.113.5, 10.0.0.2", "203.0.113.5"},       // two proxies
		{"10.0.0.1:1", "203.0.113.5, garbage", "10.0.0.1"},           // a malformed hop
		{"[2001:db8:ffff::1]:1", "2001:db8:1::5", "2001:db8:1::5"},   // IPv6
		{"[::ffff:10.0.0.1]:1", "::ffff:203.0.113.5", "203.0.113.5"}, // IPv4-mapped
		{"10.0.0.1:1", "10.0.0.3, 10.0.0.2", "10.0.0.3"},             // proxies only
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientAddr(r, trusted); got.String() != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: got %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// TestLinkRecordsForwardedClient: a link used through a trusted proxy is
// recorded with the client's address, and through anyone else with the
// peer's, whatever X-Forwarded-For says.
func TestLinkRecordsForwardedClient(t *testing.T) {
	for _, c := range []struct{ proxyFrom, want string }{{"192.0.2.0/24", "203.0.113.5"}, {"", "192.0.2.1"}} {
		tokens := &fakeTokens{}
		proxies, _ := clientnet.ParseNets(c.proxyFrom)
		h := New(Deps{Tokens: tokens, Metrics: NewMetrics(nil, func() int { return 0 }, func() int { return 0 }), Log: zerolog.Nop(), Proxies: proxies})
		r := httptest.NewRequest("POST", "/confirm/good", nil) // from 192.0.2.1
		r.Header.Set("X-Forwarded-For", "203.0.113.5")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != 200 || tokens.by != netip.MustParseAddr(c.want) {
			t.Errorf("KEYCHEST_PROXY_FROM=%q: %d, recorded %s, want %s", c.proxyFrom, rec.Code, tokens.by, c.want)
		}
	}
}
