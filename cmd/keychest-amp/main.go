// SPDX-License-Identifier: Apache-2.0

// Command keychest-amp is an ACME proxy: it logs what ACME clients (certbot,
// lego, acme.sh) do, as JSON lines in the original keychestamp's envelope,
// and reports them to keychest-lined. See docs/amp.md.
package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/amp"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/resolve"
)

// version is set by the build (make build).
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(args, stderr)
	if err != nil || cfg.Help {
		printUsage(stderr)
		if err != nil {
			fmt.Fprintf(stderr, "\nkeychest-amp: %v\n", err)
			return 2
		}
		return 0
	}
	log := newLogger(cfg.Level, stderr)
	hosts, err := amp.ParseHostList(append(append([]string{}, amp.DefaultACMEHosts...), cfg.ACMEHosts...))
	if err != nil {
		return fail(log, err)
	}
	listenIP, _ := netip.ParseAddr(cfg.Addr)
	ca, created, err := amp.LoadCA(cfg.Etc, hosts.Scope(listenIP))
	if err != nil {
		return fail(log, err)
	}
	if created {
		log.Warn().Str("code", logcode.AMPNewRoot).Time("event_time", time.Now()).Str("dir", cfg.Etc).
			Msg("new root CA created: give its PEM (keychest-amp -c) to the ACME clients")
	}
	if cfg.CA {
		stdout.Write(ca.PEM())
		return 0
	}
	return serve(cfg, hosts, ca, log)
}

// serve runs the proxy until SIGTERM or SIGINT.
func serve(cfg Config, hosts amp.HostList, ca *amp.CA, log zerolog.Logger) int {
	upstream, err := upstreamRoots(cfg.UpstreamCA)
	if err != nil {
		return fail(log, err)
	}
	st, err := amp.LoadState(cfg.Etc)
	if err != nil {
		return fail(log, err)
	}
	var queue *amp.Queue
	if !cfg.NoAPI {
		queue, err = amp.OpenQueue(filepath.Join(cfg.Etc, "queue"), cfg.QueueMax, func(n int) {
			log.Warn().Str("code", logcode.AMPQueueFull).Time("event_time", time.Now()).Int("dropped", n).Msg("report queue full: oldest events dropped")
		})
		if err != nil {
			return fail(log, err)
		}
	}
	host, _ := os.Hostname()
	journal, err := amp.OpenJournal(amp.JournalConfig{File: cfg.File, StateDir: cfg.Etc, Proxy: st.Proxy,
		Host: host, IP: proxyIP(cfg.Addr), Version: version, Queue: queue})
	if err != nil {
		return fail(log, err)
	}
	allow, _ := cfg.allowNets()
	tunnel, _ := cfg.tunnel()
	tracker := amp.NewTracker(100000)
	tracker.DefaultEmail = cfg.Email
	proxy := amp.NewProxy(amp.ProxyConfig{ACME: hosts, Allow: allow, Upstream: upstream, Log: log,
		Tunnel: tunnel, Resolver: resolve.New(cfg.Resolver),
		Observe: func(x amp.Exchange) { record(journal, tracker, x, log) }}, ca)
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Addr, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fail(log, err)
	}
	ctx, stopReporter := context.WithCancel(context.Background())
	defer stopReporter()
	reported := make(chan struct{})
	if queue != nil {
		rep := &amp.Reporter{Queue: queue, State: st, Lined: cfg.Lined, API: cfg.API, Email: cfg.Email, Log: log}
		go func() { rep.Run(ctx, 2*time.Second); close(reported) }()
	} else {
		close(reported)
	}
	log.Info().Str("code", logcode.AMPServing).Time("event_time", time.Now()).Str("listen", ln.Addr().String()).
		Str("proxy", st.Proxy).Str("file", cfg.File).Bool("report", queue != nil).Msg("serving")
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Info().Str("code", logcode.AMPDraining).Time("event_time", time.Now()).Str("signal", s.String()).Msg("draining")
	case err := <-served:
		return fail(log, err)
	}
	dctx, cancel := context.WithTimeout(context.Background(), cfg.Drain)
	defer cancel()
	if err := proxy.Shutdown(dctx); err != nil {
		log.Warn().Str("code", logcode.AMPDrainTimedOut).Time("event_time", time.Now()).Err(err).Msg("drain timed out; connections closed")
	}
	stopReporter()
	<-reported
	code := 0
	if err := journal.Close(); err != nil {
		log.Error().Str("code", logcode.AMPFlushFailed).Time("event_time", time.Now()).Err(err).Msg("flushing the log failed")
		code = 1
	}
	if queue != nil {
		queue.Close()
	}
	log.Info().Str("code", logcode.AMPStopped).Time("event_time", time.Now()).Msg("stopped")
	return code
}

// record journals the events of one exchange.
func record(j *amp.Journal, t *amp.Tracker, x amp.Exchange, log zerolog.Logger) {
	for _, ev := range t.Observe(x) {
		env, err := j.Write(ev)
		if err != nil {
			log.Error().Str("code", logcode.AMPJournalFailed).Time("event_time", time.Now()).Err(err).Str("msg", ev.Msg).Msg("journal write failed")
			continue
		}
		log.Debug().Str("code", logcode.AMPMessage).Time("event_time", ev.Time).Str("msg", ev.Msg).Int64("id", env.ID).
			Int("status", x.Status).Str("url", x.URL).Msg("ACME message")
	}
}

func upstreamRoots(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("--upstream-ca %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// proxyIP is the envelope's ip: the listen address when it is specific,
// else the host's first non-loopback address.
func proxyIP(addr string) string {
	if ip, err := netip.ParseAddr(addr); err == nil && !ip.IsUnspecified() {
		return ip.String()
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return "127.0.0.1"
}

func fail(log zerolog.Logger, err error) int {
	log.Error().Str("code", logcode.AMPCannotRun).Time("event_time", time.Now()).Err(err).Msg("cannot run")
	return 1
}

// newLogger returns the operational log (JSON on stderr): separate from the
// journal of ACME messages.
func newLogger(level string, w io.Writer) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	lvl, ok := map[string]zerolog.Level{"debug": zerolog.DebugLevel, "info": zerolog.InfoLevel, "warning": zerolog.WarnLevel,
		"warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel, "critical": zerolog.FatalLevel}[strings.ToLower(level)]
	if !ok {
		lvl = zerolog.InfoLevel
	}
	host, _ := os.Hostname()
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("host", host).Str("ip", proxyIP("")).
		Str("version", version).Int("pid", os.Getpid()).Logger()
}
