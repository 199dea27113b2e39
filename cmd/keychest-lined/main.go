// Command keychest-lined is the KeyChest line-protocol server: certbot
// hooks and containers register API keys and domains over one-line TCP
// commands on port 10023, stored in PostgreSQL.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/handlers"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// fileLimitReserve is how many descriptors stay free besides the database
// pool: the listener, the pollers, logs, and connections accepted before
// they are refused.
const fileLimitReserve = 128

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	for _, a := range os.Args[1:] {
		switch a {
		case "-h", "-help", "--help", "help":
			printUsage()
			return
		case "-version", "--version", "version":
			fmt.Println("keychest-lined", version)
			return
		}
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		fmt.Fprintln(os.Stderr, "run 'keychest-lined -h' for the list of settings")
		os.Exit(2)
	}
	log, logs := newLogger(cfg.LogLevel, version)
	code := run(cfg, log)
	logs.Close()
	os.Exit(code)
}

// run starts everything and blocks until a signal or a fatal error. It
// returns the process's exit code.
func run(cfg Config, log zerolog.Logger) int {
	if capped, limit := lineproto.CapToFileLimit(cfg.MaxConns, fileLimitReserve+cfg.DBConns); capped < cfg.MaxConns {
		log.Warn().Str("code", "SRV0004").Time("event_time", time.Now()).Int("nofile", limit).
			Int("max_conns", capped).Msg("connection limit lowered below the open-file limit")
		cfg.MaxConns = capped
	}
	srv, db, schema, err := start(cfg, log)
	if err != nil {
		log.Error().Str("code", "ERR0001").Time("event_time", time.Now()).Err(err).Msg("cannot start")
		return 1
	}
	defer db.Close()
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case addr := <-addrOf(srv):
		log.Info().Str("code", "SRV0001").Time("event_time", time.Now()).Str("listen", addr).
			Int32("schema", schema).Int("max_conns", cfg.MaxConns).Msg("serving")
	case err := <-served:
		log.Error().Str("code", "ERR0002").Time("event_time", time.Now()).Err(err).Msg("cannot listen")
		return 1
	}
	select {
	case sig := <-signals:
		log.Info().Str("code", "SRV0010").Time("event_time", time.Now()).Str("signal", sig.String()).Msg("shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn().Str("code", "SRV0012").Time("event_time", time.Now()).Err(err).Msg("shutdown cut short")
		}
		log.Info().Str("code", "SRV0011").Time("event_time", time.Now()).Msg("stopped")
		return 0
	case err := <-served:
		log.Error().Str("code", "ERR0002").Time("event_time", time.Now()).Err(err).Msg("event loop stopped")
		return 1
	}
}

// start applies the migrations (waiting for the database up to the
// startup timeout), opens the store and builds the server.
func start(cfg Config, log zerolog.Logger) (*lineproto.Server, *store.Postgres, int32, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartupTimeout)
	defer cancel()
	schema, err := migrateWithRetry(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("migrations: %w", err)
	}
	db, err := store.Open(context.Background(), cfg.DatabaseURL, cfg.DBConns)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("database URL: %w", err)
	}
	mux := handlers.NewMux(db, handlers.Config{Version: version, MaxDomainsPerKey: cfg.MaxDomainsPerKey}, log)
	return lineproto.NewServer(serverConfig(cfg), mux, log), db, schema, nil
}

// addrOf reports the listening address once the server has one.
func addrOf(srv *lineproto.Server) <-chan string {
	ch := make(chan string, 1)
	go func() { ch <- srv.Addr().String() }()
	return ch
}

// migrateWithRetry applies migrations, retrying while the database is
// unreachable until ctx ends.
func migrateWithRetry(ctx context.Context, url string, log zerolog.Logger) (int32, error) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		v, err := store.Migrate(ctx, url)
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return v, err
		}
		log.Warn().Str("code", "ERR0503").Time("event_time", time.Now()).Err(err).Msg("database unreachable, retrying")
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(delay):
		}
	}
}

func serverConfig(c Config) lineproto.Config {
	return lineproto.Config{
		Addr: c.Listen, Loops: c.Loops, MaxLine: c.MaxLine,
		QuietPeriod: c.QuietPeriod, IdleTimeout: c.IdleTimeout, MaxLifetime: c.MaxLifetime,
		RequestTimeout: c.RequestTimeout, MaxConns: c.MaxConns, MaxConnsPerIP: c.MaxConnsPerIP,
		Workers: c.Workers, QueueSize: c.QueueSize,
	}
}
