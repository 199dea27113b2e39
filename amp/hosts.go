// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"errors"
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

// errNumericName refuses a CONNECT host that is an address in a form other
// than the standard one.
var errNumericName = errors.New("an address in a legacy form (decimal, octal or hexadecimal): write it as a.b.c.d, or CONNECT to a name")

// numericName says whether host, which is not a standard address, ends in
// an all-numeric or hexadecimal label: no DNS name does (top-level domains
// are not numeric, RFC 3696 section 2), but the system's resolver reads
// such a host as an IPv4 address in a legacy form (2889949432,
// 0254.0101.040.0370, 0xac.0x41.0x20.0xf8), which would get past the
// check of the ACME hosts' addresses.
func numericName(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return false
	}
	last := host[strings.LastIndexByte(host, '.')+1:]
	if rest, ok := strings.CutPrefix(last, "0x"); ok {
		last = rest
		return last == "" || strings.Trim(last, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
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
