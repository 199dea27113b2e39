package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// envPrefix is the prefix of every environment variable the server reads.
const envPrefix = "KEYCHEST"

// Config is the server's configuration, read from KEYCHEST_* variables.
type Config struct {
	Listen           string        `envconfig:"LISTEN" default:"0.0.0.0:10023" desc:"TCP address of the line protocol"`
	DatabaseURL      string        `envconfig:"DATABASE_URL" desc:"PostgreSQL URL (make run starts a local PostgreSQL when it is empty)"`
	LogLevel         string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	Loops            int           `envconfig:"LOOPS" default:"1" desc:"event loops (0: one per CPU)"`
	Workers          int           `envconfig:"WORKERS" default:"64" desc:"goroutines running database commands"`
	QueueSize        int           `envconfig:"QUEUE_SIZE" default:"4096" desc:"database commands that may wait for a worker; past it: 503"`
	DBConns          int           `envconfig:"DB_CONNS" default:"16" desc:"PostgreSQL connections in the pool"`
	MaxLine          int           `envconfig:"MAX_LINE" default:"1024" desc:"longest line in bytes; past it: 413 and close"`
	QuietPeriod      time.Duration `envconfig:"QUIET_PERIOD" default:"25ms" desc:"silence after which a line without newline is taken as sent"`
	IdleTimeout      time.Duration `envconfig:"IDLE_TIMEOUT" default:"30s" desc:"silence after which a connection gets 408 and is closed"`
	MaxLifetime      time.Duration `envconfig:"MAX_LIFETIME" default:"5m" desc:"longest time a connection may stay open"`
	RequestTimeout   time.Duration `envconfig:"REQUEST_TIMEOUT" default:"5s" desc:"longest time a database command may take; past it: 503"`
	MaxConns         int           `envconfig:"MAX_CONNS" default:"15000" desc:"open connections in total (kept below the file limit); past it: 503"`
	MaxConnsPerIP    int           `envconfig:"MAX_CONNS_PER_IP" default:"1000" desc:"open connections per client address; past it: 503"`
	MaxDomainsPerKey int           `envconfig:"MAX_DOMAINS_PER_KEY" default:"1000" desc:"domains one API key may register; past it: 429"`
	StartupTimeout   time.Duration `envconfig:"STARTUP_TIMEOUT" default:"30s" desc:"how long to wait for the database at start"`
	ShutdownTimeout  time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long SIGTERM waits for commands in flight"`
}

// loadConfig reads the environment and checks what it can.
func loadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process(envPrefix, &c); err != nil {
		return c, err
	}
	switch {
	case c.DatabaseURL == "":
		return c, fmt.Errorf("%s_DATABASE_URL is not set (make run sets up a local PostgreSQL)", envPrefix)
	case c.Workers < 1 || c.QueueSize < 1 || c.DBConns < 1 || c.MaxConns < 1 || c.MaxConnsPerIP < 1:
		return c, fmt.Errorf("workers, queue size, database connections and connection limits must be at least 1")
	case c.MaxLine < 64:
		return c, fmt.Errorf("%s_MAX_LINE must be at least 64", envPrefix)
	case c.QuietPeriod <= 0 || c.IdleTimeout <= 0 || c.MaxLifetime <= 0 || c.RequestTimeout <= 0:
		return c, fmt.Errorf("timeouts must be positive")
	}
	return c, nil
}

// printUsage lists every variable with its default.
func printUsage() {
	fmt.Fprintf(os.Stderr, "keychest-lined: the KeyChest line-protocol server (version %s).\n\n", version)
	tw := tabwriter.NewWriter(os.Stderr, 0, 4, 2, ' ', 0)
	envconfig.Usagef(envPrefix, &Config{}, tw, envconfig.DefaultTableFormat)
	tw.Flush()
}
