// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/monitor"
)

// fixedResolver answers every name with one address.
type fixedResolver netip.Addr

func (r fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.Addr(r)}, nil
}

// BenchmarkRelayedVersusDirect measures probes a second through one agent
// (job queue, the agent's dial under allow.conf, the relay, the service's
// handshake and writes) beside the monitor's direct probes of the same
// target in the same run (the target: at least 0.5x).
//
//	go test -run '^$' -bench RelayedVersusDirect ./web/
func BenchmarkRelayedVersusDirect(b *testing.B) {
	w := newRelayWorld(b, 60*24*time.Hour)
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	const batch = 64
	ctx := context.Background()
	direct := monitor.NewProber(fixedResolver(netip.MustParseAddr("127.0.0.50")),
		monitor.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.50/32")}), nil, 64)
	// Direct probes with the agent's parallelism (32 jobs at once).
	start := time.Now()
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				direct.Probe(ctx, "ldap.corp.example", w.target.Port())
			}
		}()
	}
	for range b.N * batch {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	directRate := float64(b.N*batch) / time.Since(start).Seconds()
	start = time.Now()
	for range b.N {
		for range batch {
			if _, err := w.st.QueueAgentJob(ctx, w.account, "office", "ldap.corp.example", w.target.Port(), time.Minute); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.a.Once(ctx); err != nil {
			b.Fatal(err)
		}
	}
	relayedRate := float64(b.N*batch) / time.Since(start).Seconds()
	if n := w.count(b, `SELECT count(*) FROM agent_job_relays WHERE result->>'class' = 'ok'`); n != b.N*batch {
		b.Fatalf("relayed probes ok: %d of %d", n, b.N*batch)
	}
	b.ReportMetric(directRate, "direct-probes/s")
	b.ReportMetric(relayedRate, "relayed-probes/s")
	b.ReportMetric(relayedRate/directRate, "relayed/direct")
}
