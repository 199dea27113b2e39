package monitor

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/keychest/keychest-lined/internal/clientnet"
)

// errNotAllowed is the error of a dial the guard refused.
var errNotAllowed = errors.New("address not allowed")

// deniedNets are never dialled unless an operator allows them: anyone can
// register a name, and a name can point anywhere. The list follows the
// IANA special-purpose registries (RFC 6890 and its updates).
var deniedNets = mustPrefixes(
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
	"::/128",          // unspecified (RFC 4291)
	"::1/128",         // loopback (RFC 4291)
	"64:ff9b::/96",    // NAT64 well-known prefix: embeds any IPv4 address (RFC 6052)
	"64:ff9b:1::/48",  // local-use IPv4/IPv6 translation (RFC 8215)
	"100::/64",        // discard-only (RFC 6666)
	"2001:db8::/32",   // documentation (RFC 3849)
	"2002::/16",       // 6to4: embeds any IPv4 address (RFC 3056)
	"fc00::/7",        // unique local, ULA (RFC 4193)
	"fe80::/10",       // link-local (RFC 4291)
	"ff00::/8",        // multicast (RFC 4291)
)

// Guard decides which addresses a probe may dial: public unicast ones,
// plus any in the operator's allow-list (KEYCHEST_MONITOR_ALLOW_NETS). It
// is applied to the address actually dialled, after resolution.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard builds a guard that also allows the given networks.
func NewGuard(allow []netip.Prefix) Guard { return Guard{allow: allow} }

// Allowed reports whether addr may be dialled.
func (g Guard) Allowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" {
		return false
	}
	return clientnet.Within(addr, g.allow) || !clientnet.Within(addr, deniedNets)
}

// control is a net.Dialer Control function: the last check, on the
// address the socket is about to connect to.
func (g Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !g.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", errNotAllowed, address)
	}
	return nil
}

func mustPrefixes(list ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}
