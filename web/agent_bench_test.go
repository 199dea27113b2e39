// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/monitor"
)

// fixedResolver answers every name with one address.
type fixedResolver netip.Addr

func (r fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.Addr(r)}, nil
}

// BenchmarkRelayedVersusDirect measures probes a second through one agent
// beside the monitor's direct probes of the same target in the same run
// (the target: at least 0.5x). The relayed probes go the whole
// way of a target behind a site: 64 targets made due (one UPDATE an
// iteration, the monitor's schedule's part), queued by the agent's take,
// the agent's dial under allow.conf, the relay, the service's handshake,
// its writes, and the verdicts through the monitor's judge and write-back.
//
//	go test -run '^$' -bench RelayedVersusDirect ./web/
func BenchmarkRelayedVersusDirect(b *testing.B) {
	const batch = 64
	w := newRelayWorldWith(b, 60*24*time.Hour, worldOptions{names: []string{"ldap.corp.example", "*.bench.corp.example"}})
	ctx := context.Background()
	port := strconv.Itoa(w.target.Port())
	for i := range batch {
		name := "t" + strconv.Itoa(i) + ".bench.corp.example"
		w.dns.Set(name, netip.MustParseAddr("127.0.0.50"))
		if r := w.line(b, "command add domain "+name+":"+port+" apikey owner-key-0123456789 site office"); r.Code != lineproto.CodeOK {
			b.Fatalf("add: %+v", r)
		}
	}
	direct := monitor.NewProber(fixedResolver(netip.MustParseAddr("127.0.0.50")),
		monitor.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.50/32")}), nil, 64)
	// Direct probes with the agent's parallelism (agent.MaxJobsAtOnce).
	c0 := cpuMicros()
	start := time.Now()
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range agent.MaxJobsAtOnce {
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
	c1 := cpuMicros()
	start = time.Now()
	for range b.N {
		if _, err := w.db.Exec(ctx, `UPDATE agent_targets SET next_due = now()`); err != nil {
			b.Fatal(err)
		}
		if err := w.a.Once(ctx); err != nil {
			b.Fatal(err)
		}
	}
	relayedRate := float64(b.N*batch) / time.Since(start).Seconds()
	c2 := cpuMicros()
	n := float64(b.N * batch)
	b.ReportMetric(float64(c1-c0)/n, "cpu-us/direct")
	b.ReportMetric(float64(c2-c1)/n, "cpu-us/relayed")
	if n := w.count(b, `SELECT count(*) FROM agent_job_relays WHERE result->>'class' = 'ok'`); n != b.N*batch {
		b.Fatalf("relayed probes ok: %d of %d", n, b.N*batch)
	}
	if n := w.count(b, `SELECT count(*) FROM agent_targets WHERE state = 'ok'`); n != batch {
		b.Fatalf("targets judged ok: %d of %d", n, batch)
	}
	b.ReportMetric(directRate, "direct-probes/s")
	b.ReportMetric(relayedRate, "relayed-probes/s")
	b.ReportMetric(relayedRate/directRate, "relayed/direct")
}

// cpuMicros is this process's CPU time (user and system) so far, in µs:
// the agent, the service, the target and the prober all run in it
// (PostgreSQL does not).
func cpuMicros() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Sec*1e6 + ru.Utime.Usec + ru.Stime.Sec*1e6 + ru.Stime.Usec
}
