// SPDX-License-Identifier: Apache-2.0

// Package netguard says which addresses a program that dials on behalf of
// others may reach: the monitor's probes and CRL downloads, and the
// tunnels of keychest-amp. Public unicast addresses pass; loopback,
// private, link-local, metadata, documentation and the other
// special-purpose ranges do not, unless an operator allows them. It uses
// the standard library only.
package netguard

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// ErrNotAllowed is the error of a dial the guard refused.
var ErrNotAllowed = errors.New("address not allowed")

// Guard decides which addresses may be dialled: public unicast ones, plus
// any in the operator's allow-list. Apply it to the address actually
// dialled, after resolution (Control does, as a net.Dialer's Control), so
// a name that resolves one way when checked and another when dialled
// (DNS rebinding) cannot slip past it.
type Guard struct {
	allow []netip.Prefix
}

// New builds a guard that also allows the given networks.
func New(allow []netip.Prefix) Guard { return Guard{allow: allow} }

// Allowed reports whether addr may be dialled. An IPv4-mapped IPv6
// address is judged as its IPv4 address; an address with a zone never
// passes.
func (g Guard) Allowed(addr netip.Addr) bool {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" {
		return false
	}
	return within(addr, g.allow) || Public(addr)
}

// Control is a net.Dialer Control function: the last check, on the
// address the socket is about to connect to.
func (g Guard) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !g.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrNotAllowed, address)
	}
	return nil
}

// Public reports whether addr is a public unicast address: IPv4 outside
// the special-purpose ranges, or IPv6 inside global unicast 2000::/3 and
// outside the special-purpose ranges. An IPv4-mapped address is judged
// as its IPv4 address.
func Public(addr netip.Addr) bool {
	addr = addr.Unmap()
	switch {
	case !addr.IsValid() || addr.Zone() != "":
		return false
	case addr.Is4():
		return !within(addr, deniedV4)
	default:
		return globalUnicastV6.Contains(addr) && !within(addr, deniedV6)
	}
}

func within(ip netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

func mustPrefixes(list ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}
