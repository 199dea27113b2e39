// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"sync"
	"sync/atomic"
	"time"
)

// Log entries that a client can cause at will (its own errors: malformed
// lines, 4xx replies, refused connections) are rate-limited, so that a
// flood of them cannot fill the disk: a token bucket of logBurst entries,
// refilled at logRate a second, shared by every connection. What it
// suppresses is counted (Server.LogsSuppressed, for /metrics), and the next
// entry let through says how many entries were left out before it.
const (
	logRate  = 100
	logBurst = 500
)

// logLimiter is that token bucket.
type logLimiter struct {
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	skipped uint64 // suppressed since the last entry let through

	suppressed atomic.Uint64 // suppressed in all
}

func newLogLimiter() *logLimiter { return &logLimiter{tokens: logBurst} }

// allow reports whether an entry may be written now, and if so how many
// were suppressed since the previous one.
func (l *logLimiter) allow(now time.Time) (ok bool, skipped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logRate)
	}
	l.last = now
	if l.tokens < 1 {
		l.skipped++
		l.suppressed.Add(1)
		return false, 0
	}
	l.tokens--
	skipped, l.skipped = l.skipped, 0
	return true, skipped
}
