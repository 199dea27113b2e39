// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/handlers"
	"github.com/keychest/keychest-lined/internal/clientnet"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/mailer"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/store"
	"github.com/keychest/keychest-lined/web"
)

// fileLimitReserve is how many descriptors stay free besides the database
// pool: the listeners, the pollers, logs, and connections accepted before
// they are refused.
const fileLimitReserve = 128

// lingeringRefusals is how many refused connections may close gracefully at
// once (lineproto.Config.LingeringRefusals), on descriptors of their own.
const lingeringRefusals = 64

// app is the running server's parts.
type app struct {
	lines  *lineproto.Server
	db     *store.Postgres
	sender *mailer.Sender
	web    *http.Server
	webLn  net.Listener
	// metrics serves /metrics on KEYCHEST_METRICS_LISTEN, when it is set
	// (nil otherwise: /metrics is on the web listener).
	metrics   *http.Server
	metricsLn net.Listener
	schema    int32
	pprof     *http.Server // KEYCHEST_PPROF; nil when off
	log       zerolog.Logger

	renewals func(context.Context) // the ACME renewal check (acme_renewals.go)
	monitor  *monitor.Monitor      // nil with KEYCHEST_MONITOR=off

	tasks tasks // every background task (tasks.go)
}

// serve starts everything and blocks until a signal or a fatal error. It
// returns the process's exit code.
func serve(cfg Config, log zerolog.Logger) int {
	if capped, limit := lineproto.CapToFileLimit(cfg.MaxConns, fileLimitReserve+lingeringRefusals+cfg.DBConns); capped < cfg.MaxConns {
		log.Warn().Str("code", logcode.ConnsLowered).Time("event_time", time.Now()).Int("nofile", limit).
			Int("max_conns", capped).Msg("connection limit lowered below the open-file limit")
		cfg.MaxConns = capped
	}
	a, err := start(cfg, log)
	if err != nil {
		log.Error().Str("code", logcode.CannotStart).Time("event_time", time.Now()).Err(err).Msg("cannot start")
		return 1
	}
	defer a.db.Close()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	served := a.launch()
	select {
	case addr := <-addrOf(a.lines):
		all := listenAll(a.lines)
		metricsAt := a.webLn.Addr().String()
		if a.metricsLn != nil {
			metricsAt = a.metricsLn.Addr().String()
		}
		log.Info().Str("code", logcode.Serving).Time("event_time", time.Now()).Str("listen", addr).
			Str("http", a.webLn.Addr().String()).Str("metrics", metricsAt).Strs("listen_all", all).Int32("schema", a.schema).
			Int("max_conns", cfg.MaxConns).Bool("smtp", cfg.SMTPURL != "").Bool("monitor", a.monitor != nil).Msg("serving")
		notifySystemd(log, daemon.SdNotifyReady+"\nSTATUS=serving on "+strings.Join(all, ","))
	case err := <-served:
		log.Error().Str("code", logcode.CannotListen).Time("event_time", time.Now()).Err(err).Msg("cannot listen")
		return 1
	}
	select {
	case sig := <-signals:
		log.Info().Str("code", logcode.ShutdownRequested).Time("event_time", time.Now()).Str("signal", sig.String()).Msg("shutting down")
		notifySystemd(log, daemon.SdNotifyStopping)
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := a.stop(ctx); err != nil {
			log.Warn().Str("code", logcode.ShutdownTimedOut).Time("event_time", time.Now()).Err(err).Msg("shutdown cut short")
		}
		log.Info().Str("code", logcode.Stopped).Time("event_time", time.Now()).Msg("stopped")
		return 0
	case err := <-served:
		log.Error().Str("code", logcode.CannotListen).Time("event_time", time.Now()).Err(err).Msg("event loop stopped")
		return 1
	case <-a.tasks.run.Done():
		log.Error().Str("code", logcode.CannotListen).Time("event_time", time.Now()).Err(context.Cause(a.tasks.run)).Msg("a background task failed")
		return 1
	}
}

// notifySystemd tells systemd the server's state (the unit is
// Type=notify); outside systemd, with no NOTIFY_SOCKET, it does nothing.
func notifySystemd(log zerolog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn().Str("code", logcode.NotifyFailed).Time("event_time", time.Now()).Err(err).Msg("cannot notify systemd")
	}
}

// start applies the migrations (waiting for the database up to the
// startup timeout), opens the store and builds every part.
func start(cfg Config, log zerolog.Logger) (*app, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartupTimeout)
	defer cancel()
	a := &app{log: log}
	var err error
	if a.schema, err = migrateWithRetry(ctx, cfg.DatabaseURL, log); err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	if a.db, err = store.Open(context.Background(), cfg.DatabaseURL, cfg.DBConns, store.WithAlertBatch(cfg.AlertBatch)); err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if err := a.listenWeb(cfg); err != nil {
		a.db.Close()
		return nil, err
	}
	transport, err := mailTransport(cfg, log)
	if err != nil {
		a.closeListeners()
		return nil, err
	}
	var metrics *web.Metrics
	lcfg := serverConfig(cfg)
	lcfg.Observe = func(verb string, code int, took time.Duration) { metrics.ObserveCommand(verb, code, took) }
	mux := handlers.NewMux(a.db, handlers.Config{
		Version: version, MaxDomainsPerKey: cfg.MaxDomainsPerKey,
		KeysPerIPHour: cfg.KeysPerIPHour, ClaimsPerIPHour: cfg.ClaimsPerIPHour,
		MailsPerDay: cfg.MailsPerDay, MaxUnconfirmedKeys: cfg.UnconfirmedKeys,
		MailQueued: func() { a.sender.Poke() }, // the sender is built below, before any command arrives
		CheckEvery: cfg.MonitorCheckEvery,
		Watch:      a.pokeMonitor,

		MonitorPorts:     cfg.MonitorPorts,
		AgentSilentAfter: cfg.AgentSilentAfter,
	}, log, handlers.WithAddStarter(a.db), handlers.WithAgents(a.db), handlers.WithSiteTargets(a.db), handlers.WithDiscovery(a.db))
	a.lines = lineproto.NewServer(lcfg, mux, log)
	metrics = web.NewMetrics(mux.Verbs(), a.lines.OpenConns, a.lines.QueueDepth)
	metrics.RegisterBuildInfo(version)
	metrics.CountSuppressedLogs(a.lines.LogsSuppressed)
	metrics.CountWaitingWrites(a.db.WritesWaiting)
	a.sender = mailer.NewSender(mailer.SenderConfig{Outbox: a.db, Transport: transport, Observer: metrics, Log: log,
		RetryMin: cfg.MailRetryMin, RetryMax: cfg.MailRetryMax, GiveUp: cfg.MailGiveUp,
		Compose: mailer.Composer{PublicURL: publicURL(cfg, a.webLn.Addr())}.Fill})
	proxies, _ := clientnet.ParseNets(cfg.ProxyFrom) // loadConfig checked it
	roots, err := cfg.MonitorConfig.roots()
	if err != nil {
		a.closeListeners()
		return nil, err
	}
	if cfg.Monitor == "on" {
		if a.monitor, err = newMonitor(cfg.MonitorConfig, cfg.AgentSilentAfter, a.db, metrics.Registry, log); err != nil {
			a.closeListeners()
			return nil, err
		}
	}
	a.renewals = func(ctx context.Context) { checkRenewals(ctx, a.db, log) }
	if cfg.PProf != "" {
		a.pprof = newPProf(cfg.PProf)
	}
	webMetrics := metrics
	if a.metricsLn != nil {
		webMetrics = nil // served apart, and only there
		a.metrics = &http.Server{Handler: web.MetricsOnly(metrics.Registry), ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	}
	a.web = &http.Server{Handler: web.New(web.Deps{Tokens: a.db, Accounts: a.db, ACME: a.db, ACMELimits: acmeLimits(cfg),
		Metrics: webMetrics, Proxies: proxies, Log: log, Agents: a.db, AgentLimits: agentLimits(cfg, roots),
		Watch: a.pokeMonitor}), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	return a, nil
}

// The database is every store the web endpoints use: a method whose
// signature drifts fails the build here instead of leaving a route out.
var (
	_ web.Tokens     = (*store.Postgres)(nil)
	_ web.Accounts   = (*store.Postgres)(nil)
	_ web.ACMEStore  = (*store.Postgres)(nil)
	_ web.AgentStore = (*store.Postgres)(nil)
)

// agentLimits are the agent API's settings: relayed probes are judged by
// the monitor's policy (its thresholds), trust its roots, have their
// revocation checked by the service through the monitor's address guard
// (KEYCHEST_MONITOR_ALLOW_NETS: no private address by default), and their
// alerts gather as long as the monitor's.
func agentLimits(c Config, roots *x509.CertPool) web.AgentLimits {
	nets, _ := clientnet.ParseNets(c.MonitorAllowNets) // loadConfig checked it
	return web.AgentLimits{JobTTL: c.AgentJobTTL, LogKeep: time.Duration(c.AgentLogDays) * 24 * time.Hour,
		Policy: c.MonitorConfig.policy(), AlertBatch: c.AlertBatch, Roots: roots, Revocation: newRevocation(monitor.NewGuard(nets)),
		ClaimsPerIPHour: c.ClaimsPerIPHour, MailsPerDay: c.MailsPerDay, MaxDomainsPerKey: c.MaxDomainsPerKey}
}

// acmeLimits are the ACME endpoint's settings.
func acmeLimits(c Config) web.ACMELimits {
	return web.ACMELimits{MaxEvents: c.ACMEMaxEvents, MaxNames: c.ACMEMaxNames, RowsPerKeyHour: c.ACMERowsPerHour,
		MaxDomainsPerKey: c.MaxDomainsPerKey}
}

// listenWeb opens the web listener, and the metrics listener when
// KEYCHEST_METRICS_LISTEN is set.
func (a *app) listenWeb(cfg Config) error {
	var err error
	if a.webLn, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
		return fmt.Errorf("web listener: %w", err)
	}
	if cfg.MetricsListen == "" {
		return nil
	}
	if a.metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
		a.webLn.Close()
		return fmt.Errorf("metrics listener: %w", err)
	}
	return nil
}

// closeListeners closes the web listeners and the database pool of a
// start that failed.
func (a *app) closeListeners() {
	a.db.Close()
	a.webLn.Close()
	if a.metricsLn != nil {
		a.metricsLn.Close()
	}
}

// mailTransport is SMTP when configured, else the log.
func mailTransport(cfg Config, log zerolog.Logger) (mailer.Transport, error) {
	if cfg.SMTPURL == "" {
		return mailer.Log{Log: log}, nil
	}
	host, _ := os.Hostname()
	from := cfg.MailFrom
	if from == "" {
		from = "keychest@" + host
	}
	return mailer.NewSMTP(cfg.SMTPURL, from, host)
}

// publicURL is the base of the links in mails.
func publicURL(cfg Config, httpAddr net.Addr) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	return "http://" + httpAddr.String()
}

// addrOf reports the listening address once the server has one.
func addrOf(srv *lineproto.Server) <-chan string {
	ch := make(chan string, 1)
	go func() { ch <- srv.Addr().String() }()
	return ch
}

// listenAll is the address of every listener.
func listenAll(srv *lineproto.Server) []string {
	var all []string
	for _, a := range srv.Addrs() {
		all = append(all, a.String())
	}
	return all
}

// migrateWithRetry applies migrations, retrying while the database is
// unreachable until ctx ends.
func migrateWithRetry(ctx context.Context, url string, log zerolog.Logger) (int32, error) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		v, err := store.Migrate(ctx, url)
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return v, err
		}
		log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("database unreachable, retrying")
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(delay):
		}
	}
}

func serverConfig(c Config) lineproto.Config {
	proxies, _ := clientnet.ParseNets(c.ProxyFrom) // loadConfig checked it
	return lineproto.Config{
		ProxyFrom: proxies,
		Addr:      c.Listen, Loops: c.Loops, MaxLine: c.MaxLine,
		QuietPeriod: c.QuietPeriod, IdleTimeout: c.IdleTimeout, MaxLifetime: c.MaxLifetime,
		RequestTimeout: c.RequestTimeout, MaxConns: c.MaxConns, MaxConnsPerIP: c.MaxConnsPerIP,
		Workers: c.Workers, QueueSize: c.QueueSize, LingeringRefusals: lingeringRefusals,
	}
}

// pokeMonitor has the monitor of this process look for new and due
// targets at once (no-op when the monitor runs elsewhere).
func (a *app) pokeMonitor() {
	if a.monitor != nil {
		a.monitor.Poke()
	}
}
