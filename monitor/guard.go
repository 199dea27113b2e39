// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"net/netip"
	"syscall"

	"github.com/keychest/keychest-lined/internal/netguard"
)

// errNotAllowed is the error of a dial the guard refused.
var errNotAllowed = netguard.ErrNotAllowed

// Guard decides which addresses a probe may dial: public unicast ones,
// plus any in the operator's allow-list (KEYCHEST_MONITOR_ALLOW_NETS). It
// is applied to the address actually dialled, after resolution. The rule
// itself lives in internal/netguard, shared with keychest-amp's tunnels.
type Guard struct {
	g netguard.Guard
}

// NewGuard builds a guard that also allows the given networks.
func NewGuard(allow []netip.Prefix) Guard { return Guard{g: netguard.New(allow)} }

// Allowed reports whether addr may be dialled.
func (g Guard) Allowed(addr netip.Addr) bool { return g.g.Allowed(addr) }

// control is a net.Dialer Control function: the last check, on the
// address the socket is about to connect to.
func (g Guard) control(network, address string, c syscall.RawConn) error {
	return g.g.Control(network, address, c)
}
