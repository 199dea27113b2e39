// SPDX-License-Identifier: Apache-2.0

package netguard

import (
	"errors"
	"net/netip"
	"testing"
)

// Each special-purpose range is refused; public addresses pass.
func TestPublic(t *testing.T) {
	for _, c := range []struct {
		addr string
		want bool
	}{
		// IPv4, as the monitor always had it.
		{"127.0.0.1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"100.64.0.1", false}, {"169.254.169.254", false}, {"192.0.2.7", false}, {"198.51.100.1", false},
		{"203.0.113.5", false}, {"224.0.0.1", false}, {"0.0.0.0", false}, {"255.255.255.255", false},
		{"192.0.0.9", false}, {"192.88.99.1", false}, {"198.18.0.1", false},
		{"93.184.215.14", true}, {"1.1.1.1", true}, {"8.8.8.8", true},
		// IPv6 outside 2000::/3.
		{"::", false}, {"::1", false},
		{"::7f00:1", false},           // IPv4-compatible ::/96: 127.0.0.1
		{"::a9fe:a9fe", false},        // IPv4-compatible: 169.254.169.254
		{"::808:808", false},          // IPv4-compatible, even of a public address
		{"::ffff:0:7f00:1", false},    // IPv4-translated ::ffff:0:0:0/96
		{"::ffff:0:808:808", false},   // IPv4-translated, of a public address
		{"64:ff9b::a9fe:a9fe", false}, // NAT64
		{"64:ff9b:1::1", false},       // local-use NAT64
		{"100::1", false},             // discard-only
		{"5f00::1", false},            // SRv6 SIDs
		{"5f00:1234::1", false},
		{"fc00::1", false}, {"fd00::1", false}, {"fe80::1", false}, {"ff02::1", false},
		{"4000::1", false}, {"e000::1", false}, // unassigned, outside 2000::/3
		// IPv6 special-purpose ranges inside 2000::/3.
		{"2001::1", false},             // Teredo
		{"2001:0:4136:e378::1", false}, // Teredo with a server address
		{"2001:1::1", false},           // PCP anycast
		{"2001:2::1", false},           // benchmarking
		{"2001:20::1", false},          // ORCHIDv2
		{"2001:1ff:ffff::1", false},    // end of 2001::/23
		{"2001:db8::1", false},         // documentation
		{"2002:7f00:1::1", false},      // 6to4 of 127.0.0.1
		{"2620:4f:8000::1", false},     // AS112
		{"3fff::1", false},             // documentation (RFC 9637)
		{"3fff:fff:ffff::1", false},
		// Public IPv6.
		{"2001:200::1", true}, // just past 2001::/23
		{"2606:4700::1111", true}, {"2a00:1450:4001::1", true}, {"3ffe::1", true}, {"3fff:1000::1", true},
		// IPv4-mapped: judged as IPv4.
		{"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false}, {"::ffff:8.8.8.8", true},
		{"fe80::1%eth0", false}, {"2606:4700::1111%eth0", false},
	} {
		if got := Public(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("Public(%s) = %v, want %v", c.addr, got, c.want)
		}
		if got := New(nil).Allowed(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("Allowed(%s) = %v, want %v", c.addr, got, c.want)
		}
	}
}

func TestAllowListAndControl(t *testing.T) {
	g := New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.5/32")})
	for addr, want := range map[string]bool{"127.9.9.9": true, "::ffff:127.0.0.1": true, "10.0.0.5": true, "10.0.0.6": false, "::1": false} {
		if got := g.Allowed(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", addr, got, want)
		}
	}
	if err := g.Control("tcp4", "127.0.0.1:443", nil); err != nil {
		t.Errorf("allowed address refused: %v", err)
	}
	for _, a := range []string{"[::1]:443", "169.254.169.254:80", "[::7f00:1]:443", "not an address"} {
		if err := g.Control("tcp", a, nil); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Control(%s) = %v, want ErrNotAllowed", a, err)
		}
	}
	if New(nil).Allowed(netip.Addr{}) {
		t.Error("the zero Addr passed")
	}
}
