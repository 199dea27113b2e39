// SPDX-License-Identifier: Apache-2.0

// Command keychest-monbench measures the certificate monitor with its
// scheduling and storage: targets registered in PostgreSQL, TLS servers on
// 127.0.0.x, names resolved in process. It runs two rounds, the first
// seeing every certificate for the first time and the second seeing
// nothing new, and reports probes per second, the targets one 6-hour
// round covers at that rate, and the rows written per unchanged probe
// (from PostgreSQL's own table statistics). make bench runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/store"
)

func main() {
	dbURL := flag.String("db", "", "PostgreSQL URL of an empty database (required)")
	targets := flag.Int("targets", 5000, "targets to register")
	servers := flag.Int("servers", 16, "TLS servers, on 127.0.0.2 and up")
	concurrency := flag.Int("concurrency", 64, "probes at once (KEYCHEST_MONITOR_CONCURRENCY)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the rounds to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	if *dbURL == "" {
		log.Fatal("monbench: -db is required")
	}
	ctx := context.Background()
	ports, ca := startServers(*servers)
	check(setup(ctx, *dbURL, *targets, ports))
	db, err := store.Open(ctx, *dbURL, 16)
	check(err)
	p := monitor.NewProber(benchResolver{servers: *servers}, monitor.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}),
		ca.Pool(), *concurrency)
	m := monitor.New(db, p, monitor.Config{Concurrency: *concurrency, Policy: monitor.DefaultPolicy()}, zerolog.Nop(), nil)

	first := round(ctx, m)
	_, err = db.SyncTargets(ctx, time.Time{}, time.Now()) // nothing new; due times stay
	check(err)
	check(exec(ctx, *dbURL, `UPDATE mon_targets SET next_due = now() - interval '1 second'`))
	before := rowsWritten(ctx, *dbURL)
	second := round(ctx, m)
	db.Close() // its backends exit and flush their table statistics
	after := waitStats(ctx, *dbURL, before)
	perProbe := float64(after-before) / float64(second.n)
	fmt.Printf("| monitor, first sight (%d targets, %d servers, concurrency %d) | %.0f probes/s | %d targets per 6-hour round |\n",
		first.n, *servers, *concurrency, first.rate(), int64(first.rate()*6*3600))
	fmt.Printf("| monitor, nothing changed | %.0f probes/s | %d targets per 6-hour round |\n",
		second.rate(), int64(second.rate()*6*3600))
	fmt.Printf("| rows written per unchanged probe (pg_stat_user_tables, mon_* tables) | %.2f | target: at most 1 |\n", perProbe)
}

type measured struct {
	n    int
	took time.Duration
}

func (m measured) rate() float64 { return float64(m.n) / m.took.Seconds() }

func round(ctx context.Context, m *monitor.Monitor) measured {
	start := time.Now()
	n, err := m.Round(ctx)
	check(err)
	return measured{n: n, took: time.Since(start)}
}

// startServers serves a 90-day certificate (for *.bench.test) on each
// 127.0.0.(2+i), each on a free port, and returns the ports.
func startServers(n int) ([]int, *certtest.CA) {
	ca, err := certtest.NewCA("monbench CA", time.Now())
	check(err)
	cert, err := ca.Issue(certtest.Lifetime(time.Now(), 90*24*time.Hour, 60*24*time.Hour, "*.bench.test"))
	check(err)
	ports := make([]int, n)
	for i := range n {
		s, err := certtest.Serve(fmt.Sprintf("127.0.0.%d:0", 2+i), cert)
		check(err)
		ports[i] = s.Port()
	}
	return ports, ca
}

// benchResolver maps tN.bench.test to 127.0.0.(2 + N mod servers).
type benchResolver struct{ servers int }

func (r benchResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(host, "t"), ".bench.test"))
	if err != nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + n%r.servers)})}, nil
}

// setup migrates the database and registers the targets under one
// confirmed account: tN.bench.test on the port of server N mod servers.
func setup(ctx context.Context, url string, targets int, ports []int) error {
	if _, err := store.Migrate(ctx, url); err != nil {
		return err
	}
	return exec(ctx, url, fmt.Sprintf(`
		INSERT INTO accounts (email, confirmed_at) VALUES ('bench@example.com', now());
		INSERT INTO api_keys (key_hash, key_prefix, origin, account_id)
			SELECT sha256('bench'), 'bench000', 'server', id FROM accounts;
		INSERT INTO domains (api_key_id, name, port)
			SELECT k.id, 't' || i || '.bench.test', (ARRAY[%s])[i %% %d + 1] FROM api_keys k, generate_series(1, %d) i;`,
		strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ports)), ","), "[]"), len(ports), targets))
}

// rowsWritten sums rows inserted, updated and deleted in the monitor's tables.
func rowsWritten(ctx context.Context, url string) int64 {
	conn, err := pgx.Connect(ctx, url)
	check(err)
	defer conn.Close(ctx)
	var n int64
	check(conn.QueryRow(ctx, `SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)
		FROM pg_stat_user_tables WHERE relname LIKE 'mon\_%'`).Scan(&n))
	return n
}

// waitStats reads the statistics once the monitor's writes show in them
// (exited backends flush theirs within moments).
func waitStats(ctx context.Context, url string, before int64) int64 {
	var n int64
	for range 50 {
		if n = rowsWritten(ctx, url); n > before {
			time.Sleep(200 * time.Millisecond)
			return rowsWritten(ctx, url)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

func exec(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "monbench:", err)
		os.Exit(1)
	}
}
