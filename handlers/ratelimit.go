package handlers

import (
	"net/netip"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/lineproto"
)

// rateLimit allows each source address (each /64 for IPv6, see
// lineproto.LimitKey) perHour events an hour: a token
// bucket that holds perHour tokens and refills evenly. Zero means no limit.
// It lives in memory, so each server process counts on its own.
type rateLimit struct {
	mu      sync.Mutex
	perHour float64
	buckets map[netip.Addr]*bucket
	calls   int
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRateLimit(perHour int) *rateLimit {
	return &rateLimit{perHour: float64(perHour), buckets: make(map[netip.Addr]*bucket)}
}

// allow takes a token for ip, or reports how long until one is free.
func (l *rateLimit) allow(ip netip.Addr, now time.Time) (bool, time.Duration) {
	if l.perHour <= 0 {
		return true, 0
	}
	ip = lineproto.LimitKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%4096 == 0 {
		l.sweep(now)
	}
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{tokens: l.perHour, at: now}
		l.buckets[ip] = b
	}
	b.tokens = min(l.perHour, b.tokens+now.Sub(b.at).Hours()*l.perHour)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.perHour * float64(time.Hour))
}

// sweep forgets addresses whose bucket has refilled.
func (l *rateLimit) sweep(now time.Time) {
	for ip, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Hours()*l.perHour >= l.perHour {
			delete(l.buckets, ip)
		}
	}
}

// roundUp words a wait for a client: whole minutes, at least one.
func roundUp(d time.Duration) time.Duration {
	return max(time.Minute, d.Truncate(time.Minute)+time.Minute)
}
