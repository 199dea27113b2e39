// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"net/netip"
	"strconv"
	"testing"

	"github.com/keychest/keychest-lined/internal/ports"
	"github.com/keychest/keychest-lined/internal/resolve"
)

// A prober with a port list dials only those ports: a target on another
// one (added before the list was narrowed, or around "add") gets
// not_allowed, with no lookup and no packet sent.
func TestProbeOnlyListedPorts(t *testing.T) {
	f := newFixture(t)
	s := f.serve("127.0.0.2", "listed.test", 90*day, 60*day)
	p := f.prober(loopback)
	only443, err := ports.Parse("443")
	if err != nil {
		t.Fatal(err)
	}
	p.Ports = &only443
	lookups := 0
	p.Resolver = countingResolver{f.dns, &lookups}
	res := p.Probe(context.Background(), "listed.test", s.Port())
	if res.Class != ClassNotAllowed || res.Detail != "port "+strconv.Itoa(s.Port())+" is not in KEYCHEST_MONITOR_PORTS" ||
		len(res.Addresses) != 0 {
		t.Fatalf("result %+v", res)
	}
	if n := s.Accepts.Load(); n != 0 || lookups != 0 {
		t.Fatalf("%d connections, %d lookups for a port off the list", n, lookups)
	}
	everything, _ := ports.Parse(ports.Everything)
	p.Ports = &everything
	if res := p.Probe(context.Background(), "listed.test", s.Port()); res.Class != ClassOK {
		t.Fatalf("with every port allowed: %+v", res)
	}
}

// countingResolver counts lookups.
type countingResolver struct {
	resolve.Resolver
	n *int
}

func (c countingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	*c.n++
	return c.Resolver.LookupNetIP(ctx, network, host)
}
