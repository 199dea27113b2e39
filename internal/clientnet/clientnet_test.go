// SPDX-License-Identifier: Apache-2.0

package clientnet

import (
	"net/netip"
	"testing"
)

func TestOf(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":               "192.0.2.7/32",
		"::ffff:192.0.2.7":        "192.0.2.7/32",
		"2001:db8:1:2::a":         "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::b":    "2001:db8:1:2::/64",
		"2001:db8:1:3::a":         "2001:db8:1:3::/64",
		"2001:db8:ffff:ffff:1::9": "2001:db8:ffff:ffff::/64",
		"::1":                     "::/64",
		"fe80::1%eth0":            "fe80::/64",
		"":                        "invalid Prefix",
	} {
		var ip netip.Addr
		if in != "" {
			ip = netip.MustParseAddr(in)
		}
		if got := Of(ip).String(); got != want {
			t.Errorf("Of(%q) = %s, want %s", in, got, want)
		}
	}
}
