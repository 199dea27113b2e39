// SPDX-License-Identifier: Apache-2.0

// Package resolve holds the one way keychest's programs look up names
// when an operator names the DNS server to ask (KEYCHEST_MONITOR_RESOLVER
// for the monitor, --resolver for keychest-amp): a Resolver, and New to
// build it. It uses the standard library only.
package resolve

import (
	"context"
	"net"
	"net/netip"
)

// Resolver finds the addresses of a name; *net.Resolver is one, and tests
// give a fake that never asks DNS.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// New returns the system resolver when server is empty, or else one that
// asks only the DNS server at server ("host:port"); /etc/hosts is still
// read first.
func New(server string) Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	var d net.Dialer
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, server)
	}}
}
