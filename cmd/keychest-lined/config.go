// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/keychest/keychest-lined/internal/clientnet"
	"github.com/keychest/keychest-lined/internal/ports"
)

// envPrefix is the prefix of every environment variable the server reads.
const envPrefix = "KEYCHEST"

// Config is the server's configuration, read from KEYCHEST_* variables.
type Config struct {
	Listen           string        `envconfig:"LISTEN" default:":10023" desc:"TCP addresses of the line protocol, comma-separated; :10023 is every IPv4 and IPv6 address, 0.0.0.0:10023 IPv4 only, [::]:10023 IPv6 only"`
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
	MaxDomainsPerKey int           `envconfig:"MAX_DOMAINS_PER_KEY" default:"1000" desc:"domains one API key may register, public and behind sites together (0: no limit); past it: 403"`
	StartupTimeout   time.Duration `envconfig:"STARTUP_TIMEOUT" default:"30s" desc:"how long to wait for the database at start"`
	PProf            string        `envconfig:"PPROF" desc:"address for Go's pprof endpoints (e.g. 127.0.0.1:6060); empty: off"`
	ProxyFrom        string        `envconfig:"PROXY_FROM" desc:"networks (CIDR or addresses, comma-separated) of proxies whose PROXY protocol header (line port) and X-Forwarded-For (web listener) are believed; empty: none"`
	HTTPListen       string        `envconfig:"HTTP_LISTEN" default:"127.0.0.1:8080" desc:"address of the web pages for mail links, /healthz and /metrics"`
	PublicURL        string        `envconfig:"PUBLIC_URL" desc:"base of the links in mails (default: http:// and KEYCHEST_HTTP_LISTEN)"`
	SMTPURL          string        `envconfig:"SMTP_URL" desc:"smtp://user:pass@host:587 or smtps://...; empty: mails go to the log"`
	MailFrom         string        `envconfig:"MAIL_FROM" desc:"sender of the mails (default: keychest@ and the host name)"`
	MailRetryMin     time.Duration `envconfig:"MAIL_RETRY_MIN" default:"2s" desc:"first wait before a failed mail is sent again (doubles each time)"`
	MailRetryMax     time.Duration `envconfig:"MAIL_RETRY_MAX" default:"10m" desc:"longest wait between attempts at one mail"`
	MailGiveUp       time.Duration `envconfig:"MAIL_GIVE_UP" default:"72h" desc:"how long a mail refused for now (4xx, network) is retried before it fails; a 5xx fails it at once"`
	KeysPerIPHour    int           `envconfig:"LIMIT_KEYS_PER_IP_HOUR" default:"100" desc:"new keys per client address per hour (0: no limit); past it: 429"`
	ClaimsPerIPHour  int           `envconfig:"LIMIT_CLAIMS_PER_IP_HOUR" default:"100" desc:"claims per client address per hour (0: no limit); past it: 429"`
	MailsPerDay      int           `envconfig:"LIMIT_MAILS_PER_DAY" default:"10" desc:"mails to one address per day (0: no limit); a claim past it: 429"`
	UnconfirmedKeys  int           `envconfig:"LIMIT_UNCONFIRMED_KEYS" default:"20" desc:"keys an unconfirmed account may hold (0: no limit); past it: 403 until confirmed"`
	ShutdownTimeout  time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"how long SIGTERM waits for commands in flight"`
	ACMEMaxEvents    int           `envconfig:"ACME_MAX_EVENTS" default:"1000" desc:"events in one POST /api/v1/acme/events; past it: 413"`
	ACMEMaxNames     int           `envconfig:"ACME_MAX_NAMES" default:"5000" desc:"DNS names in one POST /api/v1/acme/events, summed over its events; past it: 413"`
	ACMERowsPerHour  int           `envconfig:"LIMIT_ACME_ROWS_PER_KEY_HOUR" default:"50000" desc:"rows (an event, and each DNS name it gives) one key may post per hour (0: no limit); past it: 429"`
	MetricsListen    string        `envconfig:"METRICS_LISTEN" desc:"address of a listener of its own for /metrics (e.g. 127.0.0.1:9323), which then leaves KEYCHEST_HTTP_LISTEN; empty: /metrics is on KEYCHEST_HTTP_LISTEN"`
	AgentSilentAfter time.Duration `envconfig:"AGENT_SILENT_AFTER" default:"15m" desc:"'command agents' shows an agent as silent, and an agent_silent finding opens (and is mailed), when it has not called in for this long"`
	AgentJobTTL      time.Duration `envconfig:"AGENT_JOB_TTL" default:"60s" desc:"how long a job for a site's agents lives; a job its agent did not finish by then is void and its target due again"`
	AgentLogDays     int           `envconfig:"AGENT_LOG_DAYS" default:"30" desc:"days the agents' posted logs are kept"`
	MonitorConfig
}

// MonitorConfig is the certificate monitor's part of the configuration.
type MonitorConfig struct {
	Monitor             string        `envconfig:"MONITOR" default:"on" desc:"on: the line server also runs the certificate monitor; off: run it apart with 'keychest-lined monitor'"`
	MonitorResolver     string        `envconfig:"MONITOR_RESOLVER" desc:"host:port of the DNS server the monitor asks (default: the system resolver)"`
	MonitorCAFile       string        `envconfig:"MONITOR_CA_FILE" desc:"PEM file of roots the monitor trusts besides the system's"`
	MonitorAllowNets    string        `envconfig:"MONITOR_ALLOW_NETS" desc:"CIDR list the monitor may dial besides public addresses (e.g. 127.0.0.0/8)"`
	MonitorConcurrency  int           `envconfig:"MONITOR_CONCURRENCY" default:"64" desc:"connections the monitor makes at once (two at most per address)"`
	MonitorInterval     time.Duration `envconfig:"MONITOR_INTERVAL" default:"6h" desc:"time between probes of a healthy target (jittered by 10%; hourly while something is wrong)"`
	MonitorCheckEvery   time.Duration `envconfig:"MONITOR_CHECK_EVERY" default:"1m" desc:"'command check' probes a target at most this often"`
	MonitorHistory      span          `envconfig:"MONITOR_HISTORY" default:"400d" desc:"how long the history of removed targets and closed findings is kept"`
	MonitorWarnFraction float64       `envconfig:"MONITOR_WARN_FRACTION" default:"0.25" desc:"warning when less than this part of the certificate's lifetime is left..."`
	MonitorWarnMax      span          `envconfig:"MONITOR_WARN_MAX" default:"30d" desc:"...or less than this, whichever is shorter"`
	MonitorCritFraction float64       `envconfig:"MONITOR_CRIT_FRACTION" default:"0.1" desc:"critical when less than this part of the lifetime is left..."`
	MonitorCritMax      span          `envconfig:"MONITOR_CRIT_MAX" default:"7d" desc:"...or less than this, whichever is shorter (and once expired)"`
	AlertBatch          time.Duration `envconfig:"ALERT_BATCH" default:"5m" desc:"an account's findings raised within this time go into one alert mail"`
	DigestDay           weekday       `envconfig:"DIGEST_DAY" default:"monday" desc:"day of the weekly digest mail (UTC)"`
	DigestHour          int           `envconfig:"DIGEST_HOUR" default:"7" desc:"hour of the weekly digest mail, 0-23 (UTC)"`
	MonitorPorts        ports.Set     `envconfig:"MONITOR_PORTS" default:"443,465,636,853,993,995,5061,6443,8443,9443" desc:"ports and ranges 'add domain' accepts for a public target (1-65535: every port); another port gets 400"`
}

// weekday is a day of the week by its English name.
type weekday time.Weekday

// Decode implements envconfig.Decoder.
func (w *weekday) Decode(v string) error {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if strings.EqualFold(v, d.String()) || strings.EqualFold(v, d.String()[:3]) {
			*w = weekday(d)
			return nil
		}
	}
	return fmt.Errorf("%q is not a day of the week", v)
}

// span is a duration that also takes whole days: "400d", "36h".
type span time.Duration

// Decode implements envconfig.Decoder.
func (s *span) Decode(v string) error {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: want whole days like 400d, or a duration like 36h", v)
		}
		*s = span(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(v)
	*s = span(d)
	return err
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
	case !validListen(c.Listen):
		return c, fmt.Errorf("%s_LISTEN must be host:port addresses separated by commas", envPrefix)
	case c.MetricsListen != "" && !validListen(c.MetricsListen) || strings.Contains(c.MetricsListen, ","):
		return c, fmt.Errorf("%s_METRICS_LISTEN must be one host:port address, or empty", envPrefix)
	case !validPrefixes(c.ProxyFrom):
		return c, fmt.Errorf("%s_PROXY_FROM must be networks (CIDR) or addresses separated by commas", envPrefix)
	case c.MaxLine < 64:
		return c, fmt.Errorf("%s_MAX_LINE must be at least 64", envPrefix)
	case c.ACMEMaxEvents < 1 || c.ACMEMaxNames < 1 || c.ACMERowsPerHour < 0:
		return c, fmt.Errorf("%s_ACME_MAX_EVENTS and %s_ACME_MAX_NAMES must be at least 1, %s_LIMIT_ACME_ROWS_PER_KEY_HOUR at least 0", envPrefix, envPrefix, envPrefix)
	case c.QuietPeriod <= 0 || c.IdleTimeout <= 0 || c.MaxLifetime <= 0 || c.RequestTimeout <= 0 || c.MailGiveUp <= 0:
		return c, fmt.Errorf("timeouts must be positive")
	}
	return c, c.MonitorConfig.check()
}

// validListen reports whether every entry of a listen list is host:port.
func validListen(list string) bool {
	for _, addr := range strings.Split(list, ",") {
		if _, port, err := net.SplitHostPort(strings.TrimSpace(addr)); err != nil || port == "" {
			return false
		}
	}
	return true
}

// validPrefixes reports whether a KEYCHEST_PROXY_FROM list parses.
func validPrefixes(list string) bool {
	_, err := clientnet.ParseNets(list)
	return err == nil
}

// printUsage lists every variable with its default.
func printUsage() {
	fmt.Fprintf(os.Stderr, "keychest-lined: the KeyChest line-protocol server (version %s).\n\n", version)
	tw := tabwriter.NewWriter(os.Stderr, 0, 4, 2, ' ', 0)
	envconfig.Usagef(envPrefix, &Config{}, tw, envconfig.DefaultTableFormat)
	tw.Flush()
	fmt.Fprintf(os.Stderr, "\nOperator commands (same configuration; --json for scripts):\n\n")
	tw = tabwriter.NewWriter(os.Stderr, 0, 4, 2, ' ', 0)
	for _, name := range []string{"accounts", "domains", "keys", "confirm", "block", "revoke", "approve", "certs", "findings", "alerts", "digest", "rotate-links", "mails", "acme", migrateCommand} {
		sub := subcommands[name]
		flags := ""
		if sub.needs != "" {
			flags = "--" + sub.needs + " " + strings.ToUpper(strings.ReplaceAll(sub.needs, "-", "_"))
		}
		fmt.Fprintf(tw, "  keychest-lined %s %s\t%s\n", name, flags, sub.summary)
	}
	fmt.Fprintf(tw, "  keychest-lined probe HOST[:PORT]\tprobe one name now and print what it serves (nothing stored)\n")
	fmt.Fprintf(tw, "  keychest-lined monitor [--once]\trun the certificate monitor alone (set KEYCHEST_MONITOR=off on the line servers)\n")
	tw.Flush()
}
