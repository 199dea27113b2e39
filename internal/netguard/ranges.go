// SPDX-License-Identifier: Apache-2.0

package netguard

import "net/netip"

// deniedV4 are the IPv4 ranges never dialled unless allowed: anyone can
// register a name, and a name can point anywhere. The list follows the
// IANA IPv4 Special-Purpose Address Registry
// (https://www.iana.org/assignments/iana-ipv4-special-registry/, RFC 6890
// and its updates), plus multicast and the reserved class E.
var deniedV4 = mustPrefixes(
	"0.0.0.0/8",       // "this network", unspecified (RFC 791)
	"10.0.0.0/8",      // private (RFC 1918)
	"100.64.0.0/10",   // shared address space, CGNAT (RFC 6598)
	"127.0.0.0/8",     // loopback (RFC 1122)
	"169.254.0.0/16",  // link-local, cloud metadata (RFC 3927)
	"172.16.0.0/12",   // private (RFC 1918)
	"192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
	"192.0.2.0/24",    // documentation TEST-NET-1 (RFC 5737)
	"192.88.99.0/24",  // 6to4 relay anycast, deprecated (RFC 7526)
	"192.168.0.0/16",  // private (RFC 1918)
	"198.18.0.0/15",   // benchmarking (RFC 2544)
	"198.51.100.0/24", // documentation TEST-NET-2 (RFC 5737)
	"203.0.113.0/24",  // documentation TEST-NET-3 (RFC 5737)
	"224.0.0.0/4",     // multicast (RFC 5771)
	"240.0.0.0/4",     // reserved, and the limited broadcast address (RFC 1112, RFC 919)
)

// globalUnicastV6 is the only IPv6 space dialled without an allow-list
// entry (RFC 4291 section 2.4; IANA IPv6 Address Space registry). Outside
// it lie, among others: ::/128, ::1/128, the IPv4-compatible ::/96 (say
// ::7f00:1) and IPv4-translated ::ffff:0:0:0/96, 64:ff9b::/96 and
// 64:ff9b:1::/48 (NAT64), 100::/64 (discard), 5f00::/16 (SRv6 SIDs,
// RFC 9602), fc00::/7 (unique local), fe80::/10 (link-local) and
// ff00::/8 (multicast).
var globalUnicastV6 = netip.MustParsePrefix("2000::/3")

// deniedV6 are the ranges of the IANA IPv6 Special-Purpose Address
// Registry (https://www.iana.org/assignments/iana-ipv6-special-registry/,
// RFC 6890 and its updates) that fall inside 2000::/3. All are denied,
// even those the registry marks globally reachable: none is a web host's
// address.
var deniedV6 = mustPrefixes(
	"2001::/23",         // IETF protocol assignments (RFC 2928): Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID, AMT, ...
	"2001:db8::/32",     // documentation (RFC 3849)
	"2002::/16",         // 6to4: embeds any IPv4 address (RFC 3056)
	"2620:4f:8000::/48", // direct delegation AS112 service (RFC 7534)
	"3fff::/20",         // documentation (RFC 9637)
)
