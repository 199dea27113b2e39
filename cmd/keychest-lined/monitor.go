// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/keychest/keychest-lined/internal/clientnet"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/ports"
	"github.com/keychest/keychest-lined/internal/resolve"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/store"
	"github.com/keychest/keychest-lined/web"
)

// check validates the monitor's settings.
func (c MonitorConfig) check() error {
	if _, err := clientnet.ParseNets(c.MonitorAllowNets); err != nil {
		return fmt.Errorf("%s_MONITOR_ALLOW_NETS: %w", envPrefix, err)
	}
	switch {
	case c.Monitor != "on" && c.Monitor != "off":
		return fmt.Errorf("%s_MONITOR must be on or off", envPrefix)
	case c.MonitorConcurrency < 1:
		return fmt.Errorf("%s_MONITOR_CONCURRENCY must be at least 1", envPrefix)
	case c.DigestHour < 0 || c.DigestHour > 23:
		return fmt.Errorf("%s_DIGEST_HOUR must be 0 to 23", envPrefix)
	case c.AlertBatch < 0:
		return fmt.Errorf("%s_ALERT_BATCH must not be negative", envPrefix)
	case c.MonitorInterval < time.Minute:
		return fmt.Errorf("%s_MONITOR_INTERVAL must be at least 1m", envPrefix)
	case c.MonitorWarnFraction <= 0 || c.MonitorWarnFraction >= 1 || c.MonitorCritFraction <= 0 ||
		c.MonitorCritFraction > c.MonitorWarnFraction || c.MonitorCritMax > c.MonitorWarnMax:
		return fmt.Errorf("monitor thresholds: want 0 < CRIT_FRACTION <= WARN_FRACTION < 1 and CRIT_MAX <= WARN_MAX")
	}
	return nil
}

// policy is the monitor's schedule and thresholds from the settings.
func (c MonitorConfig) policy() monitor.Policy {
	p := monitor.DefaultPolicy()
	p.Interval = c.MonitorInterval
	p.OpenInterval = min(p.OpenInterval, c.MonitorInterval)
	p.WarnFraction, p.WarnMax = c.MonitorWarnFraction, time.Duration(c.MonitorWarnMax)
	p.CritFraction, p.CritMax = c.MonitorCritFraction, time.Duration(c.MonitorCritMax)
	return p
}

// prober builds the TLS prober: resolver, address guard, roots (the
// system's plus MONITOR_CA_FILE), revocation checks and the ports it may
// dial (MONITOR_PORTS, the list "add" takes).
func (c MonitorConfig) prober() (*monitor.TLSProber, error) {
	nets, err := clientnet.ParseNets(c.MonitorAllowNets)
	if err != nil {
		return nil, err
	}
	guard := monitor.NewGuard(nets)
	roots, err := c.roots()
	if err != nil {
		return nil, err
	}
	p := monitor.NewProber(resolve.New(c.MonitorResolver), guard, roots, c.MonitorConcurrency)
	p.Revocation = newRevocation(guard)
	allowed := c.MonitorPorts
	if allowed.IsZero() { // a Config not read from the environment
		allowed = ports.DefaultSet()
	}
	p.Ports = &allowed
	return p, nil
}

// newRevocation is the revocation checker, whose downloads go through guard.
func newRevocation(guard monitor.Guard) *monitor.Revocation {
	return monitor.NewRevocation(guard, monitor.DefaultHandshakeTimeout, monitor.DefaultCRLMaxBytes, time.Now)
}

// roots are the system's roots plus MONITOR_CA_FILE; nil (the system's)
// without that file.
func (c MonitorConfig) roots() (*x509.CertPool, error) {
	if c.MonitorCAFile == "" {
		return nil, nil
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	pem, err := os.ReadFile(c.MonitorCAFile)
	if err != nil {
		return nil, fmt.Errorf("%s_MONITOR_CA_FILE: %w", envPrefix, err)
	}
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s_MONITOR_CA_FILE: no certificate in %s", envPrefix, c.MonitorCAFile)
	}
	return roots, nil
}

// newMonitor builds a monitor on db, with its metrics in reg.
func newMonitor(c MonitorConfig, silentAfter time.Duration, db *store.Postgres, reg prometheus.Registerer, log zerolog.Logger) (*monitor.Monitor, error) {
	p, err := c.prober()
	if err != nil {
		return nil, err
	}
	return monitor.New(db, p, monitor.Config{Concurrency: c.MonitorConcurrency, History: time.Duration(c.MonitorHistory),
		Policy: c.policy(), AlertBatch: c.AlertBatch, DigestDay: time.Weekday(c.DigestDay), DigestHour: c.DigestHour,
		AgentSilentAfter: silentAfter},
		log, monitor.NewMetrics(reg)), nil
}

// runMonitor is "keychest-lined monitor": the monitor alone, on the same
// database and settings as the line servers, with /metrics and /healthz
// on KEYCHEST_HTTP_LISTEN (/metrics on KEYCHEST_METRICS_LISTEN instead,
// when it is set). --once runs one round and exits.
func runMonitor(args []string) int {
	fs := flag.NewFlagSet("keychest-lined monitor", flag.ContinueOnError)
	once := fs.Bool("once", false, "probe every target that is due, then exit")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		return 2
	}
	log, logs := newLogger(cfg.LogLevel, version)
	defer logs.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	if _, err := migrateWithRetry(startCtx, cfg.DatabaseURL, log); err != nil {
		log.Error().Str("code", logcode.CannotStart).Time("event_time", time.Now()).Err(err).Msg("cannot start")
		return 1
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, max(4, cfg.DBConns/2))
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		return 2
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := newMonitor(cfg.MonitorConfig, cfg.AgentSilentAfter, db, reg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		return 2
	}
	if *once {
		n, err := m.Round(ctx)
		fmt.Printf("probed %d targets\n", n)
		return exitCode(err)
	}
	h, err := listenMonitorHTTP(cfg.HTTPListen, cfg.MetricsListen, reg, db)
	if err != nil {
		log.Error().Str("code", logcode.CannotListen).Time("event_time", time.Now()).Err(err).Msg("cannot listen")
		return 1
	}
	if err := h.run(ctx, m.Run); err != nil {
		log.Error().Str("code", logcode.CannotListen).Time("event_time", time.Now()).Err(err).Msg("a background task failed")
		return 1
	}
	return 0
}

// monitorHTTP is the monitor process's HTTP side: /metrics and /healthz
// on one listener, or /metrics apart on a listener of its own.
type monitorHTTP struct {
	srv, apart  *http.Server // apart: nil unless KEYCHEST_METRICS_LISTEN is set
	ln, apartLn net.Listener
}

// listenMonitorHTTP listens for /metrics and /healthz on addr, and for
// /metrics on metricsAddr instead, when it is set. Nothing is served
// before run.
func listenMonitorHTTP(addr, metricsAddr string, reg *prometheus.Registry, db *store.Postgres) (*monitorHTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	h := &monitorHTTP{ln: ln}
	mux := http.NewServeMux()
	if metricsAddr == "" {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	} else {
		if h.apartLn, err = net.Listen("tcp", metricsAddr); err != nil {
			ln.Close()
			return nil, err
		}
		h.apart = &http.Server{Handler: web.MetricsOnly(reg), ReadHeaderTimeout: 10 * time.Second}
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := db.Ping(r.Context()); err != nil {
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return h, nil
}

// run is the monitor process's tasks in one errgroup, as serve's
// (tasks.go): the HTTP servers and work (the monitor). The one stop path
// is the group's context: it ends with ctx (a signal) or when a server
// fails; then work returns, the servers close, and run returns once every
// task has ended, with the failure if there was one.
func (h *monitorHTTP) run(ctx context.Context, work func(context.Context)) error {
	g, running := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(h.srv, h.ln) })
	if h.apart != nil {
		g.Go(func() error { return serveHTTP(h.apart, h.apartLn) })
	}
	g.Go(func() error {
		work(running)
		h.srv.Close()
		if h.apart != nil {
			h.apart.Close()
		}
		return nil
	})
	return g.Wait()
}

func exitCode(err error) int {
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		return 1
	}
	return 0
}
