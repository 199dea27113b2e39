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
	"github.com/keychest/keychest-lined/internal/resolve"
)

// maxDialAddresses bounds the addresses one dial tries.
const maxDialAddresses = 8

// DefaultTunnelPorts is --tunnel-ports when it is not given.
var DefaultTunnelPorts = []int{443}

// TunnelPolicy says which CONNECTs to hosts off the ACME list are
// tunnelled. The zero policy tunnels nothing.
type TunnelPolicy struct {
	Ports []int          // ports a tunnel may reach; empty: none
	Nets  []netip.Prefix // networks a tunnel may reach besides public unicast ones (internal/netguard)
}

// ParseTunnelPorts reads --tunnel-ports: port numbers, or the one word
// "none" (no tunnel at all: every CONNECT off the ACME list is refused).
func ParseTunnelPorts(entries []string) ([]int, error) {
	if len(entries) == 1 && strings.EqualFold(entries[0], "none") {
		return nil, nil
	}
	var ports []int
	for _, e := range entries {
		n, err := strconv.Atoi(e)
		if err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("--tunnel-ports %q: not a port (1-65535), nor the one word none", e)
		}
		ports = append(ports, n)
	}
	if len(ports) == 0 {
		return nil, errors.New("--tunnel-ports is empty: give ports, or none")
	}
	return ports, nil
}

// portsText is the policy's ports as --tunnel-ports takes them.
func (t TunnelPolicy) portsText() string {
	if len(t.Ports) == 0 {
		return "none"
	}
	s := make([]string, len(t.Ports))
	for i, p := range t.Ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// errNoPort is a tunnel refused for its port.
var errNoPort = errors.New("port not in --tunnel-ports")

// check is the policy's verdict on a tunnel to host:port before any
// lookup: the port, and the address when host is one.
func (t TunnelPolicy) check(host string, port int) error {
	if !slices.Contains(t.Ports, port) {
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
