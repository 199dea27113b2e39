// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"net/netip"
	"sync"
	"syscall"

	"github.com/keychest/keychest-lined/internal/clientnet"
)

// connLimits holds the open connections, in the loop or detached, and
// limits them in total and per client (clientnet.Of: an IPv4 address, an
// IPv6 /64).
type connLimits struct {
	mu       sync.Mutex
	conns    map[*conn]struct{}
	perIP    map[netip.Prefix]int
	maxTotal int
	maxPerIP int
}

func newConnLimits(maxTotal, maxPerIP int) *connLimits {
	return &connLimits{conns: make(map[*conn]struct{}), perIP: make(map[netip.Prefix]int),
		maxTotal: maxTotal, maxPerIP: maxPerIP}
}

// acquire adds c, or reports why it may not open.
func (l *connLimits) acquire(c *conn) *Error {
	key := clientnet.Of(c.remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.maxTotal {
		return Errorf(CodeUnavailable, "too many connections, retry later")
	}
	if l.perIP[key] >= l.maxPerIP {
		return Errorf(CodeUnavailable, "too many connections from %s, retry later", c.remote)
	}
	l.conns[c] = struct{}{}
	l.perIP[key]++
	return nil
}

// release removes a connection that acquire admitted.
func (l *connLimits) release(c *conn) {
	key := clientnet.Of(c.remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	if n := l.perIP[key] - 1; n > 0 {
		l.perIP[key] = n
	} else {
		delete(l.perIP, key)
	}
}

// open returns the number of open connections.
func (l *connLimits) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// all returns the open connections.
func (l *connLimits) all() []*conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		all = append(all, c)
	}
	return all
}

// CapToFileLimit returns maxConns lowered so that connections plus reserve
// descriptors stay below the open-file limit (which Go raises to its hard
// maximum at start), and the limit itself. evio stops serving altogether
// when accept fails with EMFILE, so the server must refuse connections
// before the descriptors run out.
func CapToFileLimit(maxConns, reserve int) (capped, limit int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return maxConns, 0
	}
	limit = int(min(rl.Cur, 1<<30))
	return max(1, min(maxConns, limit-reserve)), limit
}
