// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// servers returns n Muxes, each on its own store (its own pool), all on
// one database: n servers behind a load balancer.
func servers(t *testing.T, n int, cfg Config) []*Mux {
	t.Helper()
	url := pgtest.NewDatabase(t)
	out := make([]*Mux, n)
	for i := range out {
		st, err := store.Open(context.Background(), url, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		out[i] = NewMux(st, cfg, zerolog.Nop())
	}
	return out
}

// serveFrom serves line as sent from the address from.
func serveFrom(t *testing.T, m *Mux, from, line string) lineproto.Reply {
	t.Helper()
	req, perr := lineproto.ParseLine([]byte(line))
	if perr != nil {
		t.Fatalf("%q: %v", line, perr)
	}
	req.Remote = netip.MustParseAddr(from)
	return m.Serve(context.Background(), &req)
}

// Two servers on one database share each client's limit: the third new
// key, asked of either server, is refused. An IPv6 client is its /64.
func TestLimitsSharedByServers(t *testing.T) {
	cfg := testConfig(1000)
	cfg.KeysPerIPHour, cfg.ClaimsPerIPHour = 2, 2
	s := servers(t, 2, cfg)
	a, b := s[0], s[1]

	expect(t, serveFrom(t, a, "192.0.2.7", "command apikey"), 200, "new api key")
	expect(t, serveFrom(t, b, "192.0.2.7", "command apikey"), 200, "new api key")
	expect(t, serveFrom(t, a, "192.0.2.7", "command apikey"), 429, "too many new keys from 192.0.2.7; retry in 30m")
	expect(t, serveFrom(t, b, "192.0.2.7", "command apikey"), 429, "too many new keys from 192.0.2.7; retry in 30m")
	expect(t, serveFrom(t, b, "192.0.2.8", "command apikey"), 200, "new api key")

	expect(t, serveFrom(t, a, "2001:db8:0:1::1", "command apikey"), 200, "new api key")
	expect(t, serveFrom(t, b, "2001:db8:0:1:ffff:ffff:ffff:ffff", "command apikey"), 200, "new api key")
	expect(t, serveFrom(t, a, "2001:db8:0:1::2", "command apikey"), 429, "too many new keys from 2001:db8:0:1::/64; retry in")
	expect(t, serveFrom(t, a, "2001:db8:0:2::1", "command apikey"), 200, "new api key")

	claim := func(m *Mux, i int) lineproto.Reply {
		return serveFrom(t, m, "192.0.2.9", fmt.Sprintf("command claim apikey client-made-key-%04d email u%d@example.com", i, i))
	}
	expect(t, claim(a, 1), 200, "claimed")
	expect(t, claim(b, 2), 200, "claimed")
	expect(t, claim(a, 3), 429, "too many claims from 192.0.2.9; retry in")
	expect(t, claim(b, 4), 429, "too many claims from 192.0.2.9; retry in")
}

// A limit of 0 is no limit.
func TestNoLimit(t *testing.T) {
	cfg := testConfig(1000)
	m := servers(t, 1, cfg)[0]
	for i := 0; i < 5; i++ {
		expect(t, serveFrom(t, m, "192.0.2.7", "command apikey"), 200, "new api key")
	}
}

func TestRoundUp(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		0: time.Minute, 90 * time.Second: 2 * time.Minute, 30 * time.Minute: 31 * time.Minute,
	} {
		if got := roundUp(in); got != want {
			t.Errorf("roundUp(%s) = %s, want %s", in, got, want)
		}
	}
}
