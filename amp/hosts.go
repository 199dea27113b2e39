// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultACMEHosts are the public ACME servers intercepted by default:
// Let's Encrypt production and staging, Buypass (both), ZeroSSL and
// Google Trust Services (both).
var DefaultACMEHosts = []string{
	"acme-v02.api.letsencrypt.org",
	"acme-staging-v02.api.letsencrypt.org",
	"api.buypass.com",
	"api.test4.buypass.no",
	"acme.zerossl.com",
	"dv.acme-v02.api.pki.goog",
	"dv.acme-v02.test-api.pki.goog",
}

// HostList is the set of ACME hosts and their ports.
type HostList map[string][]int

// ParseHostList reads HOST or HOST:PORT entries (port 443 when left out).
func ParseHostList(entries []string) (HostList, error) {
	l := HostList{}
	for _, e := range entries {
		host, port := e, 443
		if h, p, err := net.SplitHostPort(e); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("acme host %q: bad port", e)
			}
			host, port = h, n
		}
		host = canonicalHost(host)
		if host == "" || strings.ContainsAny(host, "/ *") {
			return nil, fmt.Errorf("acme host %q: not a host name", e)
		}
		l[host] = append(l[host], port)
	}
	return l, nil
}

// Has says whether host:port is on the list; the host's case and
// trailing dots do not matter.
func (l HostList) Has(host string, port int) bool {
	for _, p := range l[canonicalHost(host)] {
		if p == port {
			return true
		}
	}
	return false
}

// HasName says whether host is on the list with any port; the host's
// case and trailing dots do not matter.
func (l HostList) HasName(host string) bool {
	_, ok := l[canonicalHost(host)]
	return ok
}

// canonicalHost is a host name as the proxy compares it (the ACME list,
// CONNECT targets, the names its leaves are minted for): lowercase, without
// trailing dots (a fully qualified "name." is the same host as "name").
func canonicalHost(host string) string {
	return strings.TrimRight(strings.ToLower(host), ".")
}

// Scope is what the root must permit: the ACME hosts, the names the proxy
// answers for itself, loopback (for an https:// proxy URL on loopback) and
// listenIP when it is a specific address.
func (l HostList) Scope(listenIP netip.Addr) Scope {
	var s Scope
	ips := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	if listenIP.IsValid() && !listenIP.IsUnspecified() && !listenIP.IsLoopback() {
		ips = append(ips, listenIP)
	}
	for h := range l {
		if ip, err := netip.ParseAddr(h); err == nil {
			ips = append(ips, ip)
		} else {
			s.Names = append(s.Names, h)
		}
	}
	s.Names = append(s.Names, RootHosts...)
	for _, ip := range ips {
		s.IPs = append(s.IPs, net.IP(ip.AsSlice()))
	}
	return s
}
