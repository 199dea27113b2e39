// SPDX-License-Identifier: Apache-2.0

package clientnet

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseNets reads a list of networks separated by commas or spaces, as
// KEYCHEST_PROXY_FROM, KEYCHEST_MONITOR_ALLOW_NETS and keychest-amp's
// --allow and --tunnel-nets hold them: CIDR networks, or bare addresses
// taken as single-address networks.
func ParseNets(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a network (CIDR) or an address", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Within reports whether ip is in one of the networks.
func Within(ip netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
