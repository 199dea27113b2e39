package lineproto

import (
	"net/netip"
	"sync"
	"syscall"
)

// connLimits holds the open connections, in the loop or detached, and
// limits them in total and per source address.
type connLimits struct {
	mu       sync.Mutex
	conns    map[*conn]struct{}
	perIP    map[netip.Addr]int
	maxTotal int
	maxPerIP int
}

func newConnLimits(maxTotal, maxPerIP int) *connLimits {
	return &connLimits{conns: make(map[*conn]struct{}), perIP: make(map[netip.Addr]int),
		maxTotal: maxTotal, maxPerIP: maxPerIP}
}

// acquire adds c, or reports why it may not open.
func (l *connLimits) acquire(c *conn) *Error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= l.maxTotal {
		return Errorf(CodeUnavailable, "too many connections, retry later")
	}
	if l.perIP[c.remote] >= l.maxPerIP {
		return Errorf(CodeUnavailable, "too many connections from %s, retry later", c.remote)
	}
	l.conns[c] = struct{}{}
	l.perIP[c.remote]++
	return nil
}

// release removes a connection that acquire admitted.
func (l *connLimits) release(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
	if n := l.perIP[c.remote] - 1; n > 0 {
		l.perIP[c.remote] = n
	} else {
		delete(l.perIP, c.remote)
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
