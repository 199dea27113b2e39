// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/internal/resolve"
)

// Freshness of the ACME hosts' addresses, and the time one lookup of them
// may take.
const (
	acmeAddrsTTL     = time.Minute
	acmeAddrsTimeout = 5 * time.Second
)

// acmeAddrs knows the addresses of the ACME hosts, so that a CONNECT to
// one of them by address, which the proxy could not intercept, is refused
// rather than tunnelled unseen. Names are looked up through the proxy's
// resolver when first needed and again once their addresses are a minute
// old; a failed lookup keeps the addresses known before.
type acmeAddrs struct {
	r     resolve.Resolver
	hosts HostList

	mu     sync.Mutex
	byName map[string][]netip.Addr
	until  time.Time
}

func newACMEAddrs(r resolve.Resolver, hosts HostList) *acmeAddrs {
	return &acmeAddrs{r: r, hosts: hosts, byName: map[string][]netip.Addr{}}
}

// owner returns the ACME host that ip belongs to, if any.
func (a *acmeAddrs) owner(ctx context.Context, ip netip.Addr) (string, bool) {
	ip = ip.Unmap().WithZone("")
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Now().After(a.until) {
		a.refresh(ctx)
	}
	for name, addrs := range a.byName {
		for _, x := range addrs {
			if x.Unmap() == ip {
				return name, true
			}
		}
	}
	return "", false
}

// refresh looks every ACME host up again, all at once; under a.mu.
func (a *acmeAddrs) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, acmeAddrsTimeout)
	defer cancel()
	type found struct {
		name  string
		addrs []netip.Addr
	}
	results := make(chan found, len(a.hosts))
	for name := range a.hosts {
		go func() {
			addrs, err := lookup(ctx, a.r, name)
			if err != nil {
				addrs = nil
			}
			results <- found{name, addrs}
		}()
	}
	for range a.hosts {
		if f := <-results; f.addrs != nil {
			a.byName[f.name] = f.addrs
		}
	}
	a.until = time.Now().Add(acmeAddrsTTL)
}
