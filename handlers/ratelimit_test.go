package handlers

import (
	"net/netip"
	"testing"
	"time"
)

func TestRateLimit(t *testing.T) {
	l := newRateLimit(2)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		if ok, _ := l.allow(a, now); !ok {
			t.Fatalf("event %d refused", i)
		}
	}
	ok, wait := l.allow(a, now)
	if ok || wait != 30*time.Minute {
		t.Fatalf("third event: %v, wait %s; want refused, 30m", ok, wait)
	}
	if ok, _ := l.allow(b, now); !ok {
		t.Fatal("another address was limited")
	}
	if ok, _ := l.allow(a, now.Add(31*time.Minute)); !ok {
		t.Fatal("no token after the wait")
	}
	if ok, _ := newRateLimit(0).allow(a, now); !ok {
		t.Fatal("a zero limit refused")
	}
	if got := roundUp(90 * time.Second); got != 2*time.Minute {
		t.Fatalf("roundUp: %s", got)
	}
}

// TestRateLimitShareA64: two IPv6 addresses of one /64 draw on one bucket.
func TestRateLimitShareA64(t *testing.T) {
	l := newRateLimit(2)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("2001:db8:1:2::a"), netip.MustParseAddr("2001:db8:1:2:ffff::b")
	if ok, _ := l.allow(a, now); !ok {
		t.Fatal("first refused")
	}
	if ok, _ := l.allow(b, now); !ok {
		t.Fatal("second refused")
	}
	if ok, _ := l.allow(b, now); ok {
		t.Fatal("third from the /64 allowed")
	}
	if ok, _ := l.allow(netip.MustParseAddr("2001:db8:1:3::a"), now); !ok {
		t.Fatal("the next /64 was limited")
	}
}
