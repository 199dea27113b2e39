// SPDX-License-Identifier: Apache-2.0

// Package clientnet holds the address rules several packages share: which
// client a per-address limit counts (the line server's connection limits
// and the database's rate limits), and lists of networks (the trusted
// proxies of the line and web listeners, the monitor's allowed networks,
// keychest-amp's --allow and --tunnel-nets).
package clientnet

import "net/netip"

// Of is the network of the client at ip, as per-address limits count it:
// an IPv4 address on its own (a /32), an IPv6 address by its /64, since one
// host owns a whole /64 and may use any address in it. An IPv4-mapped IPv6
// address counts as its IPv4 address; a zone is dropped. The zero Addr
// gives the zero Prefix.
func Of(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}
