// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/keychest/keychest-lined/internal/netguard"
	"github.com/keychest/keychest-lined/internal/ports"
	"github.com/keychest/keychest-lined/internal/resolve"
)

// maxDialAddresses bounds the addresses one dial tries.
const maxDialAddresses = 8

// DefaultTunnelPorts is --tunnel-ports when it is not given (the flag's
// default in cmd/keychest-amp says the same).
const DefaultTunnelPorts = "443"

// TunnelPolicy says which CONNECTs to hosts off the ACME list are
// tunnelled. The zero policy tunnels nothing.
type TunnelPolicy struct {
	Ports ports.Set      // ports a tunnel may reach; the zero Set: none
	Nets  []netip.Prefix // networks a tunnel may reach besides public unicast ones (internal/netguard)
}

// ParseTunnelPorts reads --tunnel-ports: ports and ranges of ports, read
// by the same rule as KEYCHEST_MONITOR_PORTS (internal/ports), or the one
// word "none" (no tunnel at all: every CONNECT off the ACME list is
// refused), which gives the zero Set.
func ParseTunnelPorts(entries []string) (ports.Set, error) {
	if len(entries) == 1 && isNone(entries[0]) {
		return ports.Set{}, nil
	}
	if slices.ContainsFunc(entries, isNone) {
		return ports.Set{}, errors.New("--tunnel-ports: none stands alone: give ports, or the one word none")
	}
	set, err := ports.Parse(strings.Join(entries, ","))
	if err != nil {
		return ports.Set{}, fmt.Errorf("--tunnel-ports: %w; or give the one word none for no tunnel", err)
	}
	return set, nil
}

// isNone reports whether a --tunnel-ports entry is the word none.
func isNone(entry string) bool { return strings.EqualFold(strings.TrimSpace(entry), "none") }

// portsText is the policy's ports as --tunnel-ports takes them.
func (t TunnelPolicy) portsText() string {
	if t.Ports.IsZero() {
		return "none"
	}
	return t.Ports.String()
}

// errNoPort is a tunnel refused for its port.
var errNoPort = errors.New("port not in --tunnel-ports")

// check is the policy's verdict on a tunnel to host:port before any
// lookup: the port, and the address when host is one.
func (t TunnelPolicy) check(host string, port int) error {
	if !t.Ports.Allows(port) {
		return fmt.Errorf("%w (%s)", errNoPort, t.portsText())
	}
	if ip, err := netip.ParseAddr(host); err == nil && !netguard.New(t.Nets).Allowed(ip) {
		return fmt.Errorf("%w: %s", netguard.ErrNotAllowed, ip)
	}
	return nil
}

// dialer is the dialer of tunnels: its Control refuses, on the socket
// itself, any address the policy does not allow, so a name that resolves
// again to another address (DNS rebinding) cannot slip past.
func (t TunnelPolicy) dialer() *net.Dialer {
	return &net.Dialer{Timeout: dialTimeout, Control: netguard.New(t.Nets).Control}
}

// lookup resolves host through r, unless it is an address already.
func lookup(ctx context.Context, r resolve.Resolver, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("no address for %s", host)
	}
	return addrs, err
}

// dialResolved dials host:port: each of host's addresses in turn, through
// d. When every address was refused by d's guard, the error wraps
// netguard.ErrNotAllowed; a failure to connect wins over a refusal.
func dialResolved(ctx context.Context, r resolve.Resolver, d *net.Dialer, host string, port int) (net.Conn, error) {
	addrs, err := lookup(ctx, r, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) > maxDialAddresses {
		addrs = addrs[:maxDialAddresses]
	}
	var refused, failed error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		switch {
		case err == nil:
			return c, nil
		case errors.Is(err, netguard.ErrNotAllowed):
			refused = err
		default:
			failed = err
		}
	}
	if failed != nil {
		return nil, failed
	}
	return nil, refused
}

// relayDial is the relay's DialContext: the ACME hosts, through the
// proxy's resolver. The operator listed them, so no guard applies.
func relayDial(r resolve.Resolver) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: dialTimeout}
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		host, portText, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		port, err := strconv.Atoi(portText)
		if err != nil {
			return nil, err
		}
		return dialResolved(ctx, r, d, host, port)
	}
}
