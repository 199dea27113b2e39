package lineproto

import (
	"net/netip"
	"sync"
	"syscall"
)

// connLimits counts open connections, in total and per source address.
type connLimits struct {
	mu       sync.Mutex
	total    int
	perIP    map[netip.Addr]int
	maxTotal int
	maxPerIP int
}

func newConnLimits(maxTotal, maxPerIP int) *connLimits {
	return &connLimits{perIP: make(map[netip.Addr]int), maxTotal: maxTotal, maxPerIP: maxPerIP}
}

// LimitKey is what per-address limits count on: an IPv4 address itself,
// and for IPv6 the address's /64, since one client network gets a whole
// /64 and may use any address in it.
func LimitKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if !ip.Is6() {
		return ip
	}
	p, _ := ip.Prefix(64)
	return p.Addr()
}

// acquire counts a new connection from ip, or reports why it may not open.
func (l *connLimits) acquire(ip netip.Addr) *Error {
	key := LimitKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxTotal {
		return Errorf(CodeUnavailable, "too many connections, retry later")
	}
	if l.perIP[key] >= l.maxPerIP {
		return Errorf(CodeUnavailable, "too many connections from %s, retry later", ip)
	}
	l.total++
	l.perIP[key]++
	return nil
}

// release uncounts a connection that acquire admitted.
func (l *connLimits) release(ip netip.Addr) {
	ip = LimitKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if n := l.perIP[ip] - 1; n > 0 {
		l.perIP[ip] = n
	} else {
		delete(l.perIP, ip)
	}
}

// open returns the number of counted connections.
func (l *connLimits) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
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
