// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"net/netip"
	"testing"
)

// TestConnLimitsShareA64: two addresses of one /64 share the per-address
// connection limit; the next /64 and IPv4 count on their own.
func TestConnLimitsShareA64(t *testing.T) {
	l := newConnLimits(100, 2)
	from := func(addr string) *conn { return &conn{remote: netip.MustParseAddr(addr)} }
	a, b := from("2001:db8:1:2::a"), from("2001:db8:1:2:ffff::b")
	if l.acquire(a) != nil || l.acquire(b) != nil {
		t.Fatal("first two refused")
	}
	if err := l.acquire(from("2001:db8:1:2::c")); err == nil || err.Code != CodeUnavailable {
		t.Fatalf("third from the /64: %v", err)
	}
	if l.acquire(from("2001:db8:1:3::a")) != nil || l.acquire(from("192.0.2.1")) != nil {
		t.Fatal("another network was limited")
	}
	l.release(b)
	if l.acquire(from("2001:db8:1:2::d")) != nil {
		t.Fatal("no room after a release from the same /64")
	}
	if l.open() != 4 {
		t.Fatalf("open %d", l.open())
	}
}
