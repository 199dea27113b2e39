// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/keychest/keychest-lined/amp"
	"github.com/keychest/keychest-lined/internal/clientnet"
)

// envPrefix is the prefix of the environment variables keychest-amp reads;
// a flag given on the command line wins over its variable.
const envPrefix = "KEYCHESTAMP"

// defaultAuditFile is the local log of -n when -f does not name one.
const defaultAuditFile = "/var/log/keychestamp/audit.json"

// Config is keychest-amp's configuration.
type Config struct {
	Addr        string        `envconfig:"ADDR" default:"127.0.0.1" desc:"-a, --addr: address the proxy listens on"`
	Port        int           `envconfig:"PORT" default:"8443" desc:"-p, --port: port the proxy listens on"`
	Etc         string        `envconfig:"ETC" default:"/etc/keychestamp" desc:"-e, --etc: folder of the root CA, the API key and the queue"`
	File        string        `envconfig:"FILE" desc:"-f, --file: local JSON lines log (with -n: /var/log/keychestamp/audit.json)"`
	NoAPI       bool          `envconfig:"NOAPI" desc:"-n, --noapi: no reporting to keychest-lined; log to the local file only"`
	Level       string        `envconfig:"LEVEL" default:"info" desc:"-l, --level: DEBUG, INFO, WARNING, ERROR or CRITICAL (the operational log)"`
	CA          bool          `ignored:"true"`
	Help        bool          `ignored:"true"`
	ACMEHosts   []string      `envconfig:"ACME_HOSTS" desc:"--acme-host HOST[:PORT] (repeatable): more ACME servers to intercept (port 443 when left out)"`
	UpstreamCA  string        `envconfig:"UPSTREAM_CA" desc:"--upstream-ca FILE: PEM roots trusted for ACME servers besides the system's"`
	Allow       []string      `envconfig:"ALLOW" default:"127.0.0.0/8,::1/128" desc:"--allow NET (repeatable): client networks served"`
	Lined       string        `envconfig:"LINED" desc:"--lined HOST:PORT: keychest-lined's line protocol (for the API key)"`
	API         string        `envconfig:"API" desc:"--api URL: base URL of keychest-lined's web listener (events go to /api/v1/acme/events)"`
	Email       string        `envconfig:"EMAIL" desc:"--email E: claim the proxy's API key for this address"`
	QueueMax    int           `envconfig:"QUEUE_MAX" default:"100000" desc:"--queue-max N: events kept while keychest-lined is unreachable; past it the oldest are dropped"`
	Drain       time.Duration `envconfig:"DRAIN" default:"10s" desc:"--drain D: how long SIGTERM waits for connections in flight"`
	TunnelPorts []string      `envconfig:"TUNNEL_PORTS" default:"443" desc:"--tunnel-ports PORT or LO-HI (repeatable) or none: ports a CONNECT off the ACME list is tunnelled to; none refuses every such CONNECT"`
	TunnelNets  []string      `envconfig:"TUNNEL_NETS" desc:"--tunnel-nets NET (repeatable): networks tunnels may reach besides public addresses (loopback, private, link-local, metadata and reserved ones are refused)"`
	Resolver    string        `envconfig:"RESOLVER" desc:"--resolver HOST:PORT: the only DNS server asked for the names the proxy looks up (default: the system's)"`
}

// list is a repeatable flag.
type list struct {
	vals *[]string
	set  bool
}

func (l *list) String() string { return "" }

func (l *list) Set(v string) error {
	if !l.set { // the first flag replaces the environment's value
		*l.vals, l.set = nil, true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.vals = append(*l.vals, s)
		}
	}
	return nil
}

// loadConfig reads KEYCHESTAMP_* and then the flags.
func loadConfig(args []string, stderr io.Writer) (Config, error) {
	var c Config
	if err := envconfig.Process(envPrefix, &c); err != nil {
		return c, err
	}
	fs := flag.NewFlagSet("keychest-amp", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, n := range []string{"a", "addr"} {
		fs.StringVar(&c.Addr, n, c.Addr, "")
	}
	for _, n := range []string{"p", "port"} {
		fs.IntVar(&c.Port, n, c.Port, "")
	}
	for _, n := range []string{"e", "etc"} {
		fs.StringVar(&c.Etc, n, c.Etc, "")
	}
	for _, n := range []string{"f", "file"} {
		fs.StringVar(&c.File, n, c.File, "")
	}
	for _, n := range []string{"l", "level"} {
		fs.StringVar(&c.Level, n, c.Level, "")
	}
	for _, n := range []string{"n", "noapi"} {
		fs.BoolVar(&c.NoAPI, n, c.NoAPI, "")
	}
	for _, n := range []string{"c", "ca"} {
		fs.BoolVar(&c.CA, n, false, "")
	}
	for _, n := range []string{"h", "help"} {
		fs.BoolVar(&c.Help, n, false, "")
	}
	fs.Var(&list{vals: &c.ACMEHosts}, "acme-host", "")
	fs.Var(&list{vals: &c.Allow}, "allow", "")
	fs.StringVar(&c.UpstreamCA, "upstream-ca", c.UpstreamCA, "")
	fs.StringVar(&c.Lined, "lined", c.Lined, "")
	fs.StringVar(&c.API, "api", c.API, "")
	fs.StringVar(&c.Email, "email", c.Email, "")
	fs.IntVar(&c.QueueMax, "queue-max", c.QueueMax, "")
	fs.DurationVar(&c.Drain, "drain", c.Drain, "")
	fs.Var(&list{vals: &c.TunnelPorts}, "tunnel-ports", "")
	fs.Var(&list{vals: &c.TunnelNets}, "tunnel-nets", "")
	fs.StringVar(&c.Resolver, "resolver", c.Resolver, "")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.NoAPI && c.File == "" {
		c.File = defaultAuditFile
	}
	return c, c.check()
}

func (c Config) check() error {
	switch {
	case c.Help || c.CA:
		return nil
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("port %d out of range", c.Port)
	case c.QueueMax < 1:
		return fmt.Errorf("--queue-max must be at least 1")
	case !c.NoAPI && (c.Lined == "" || c.API == ""):
		return fmt.Errorf("reporting needs --lined HOST:PORT and --api URL (%s_LINED, %s_API); -n turns it off", envPrefix, envPrefix)
	}
	if _, err := c.allowNets(); err != nil {
		return err
	}
	_, err := c.tunnel()
	return err
}

// allowNets parses --allow.
func (c Config) allowNets() ([]netip.Prefix, error) { return parseNets("--allow", c.Allow) }

// tunnel parses --tunnel-ports and --tunnel-nets.
func (c Config) tunnel() (amp.TunnelPolicy, error) {
	ports, err := amp.ParseTunnelPorts(c.TunnelPorts)
	if err != nil {
		return amp.TunnelPolicy{}, err
	}
	nets, err := parseNets("--tunnel-nets", c.TunnelNets)
	return amp.TunnelPolicy{Ports: ports, Nets: nets}, err
}

// parseNets reads networks (CIDR) or single addresses by the rule of
// KEYCHEST_PROXY_FROM and KEYCHEST_MONITOR_ALLOW_NETS (internal/clientnet).
func parseNets(flagName string, list []string) ([]netip.Prefix, error) {
	nets, err := clientnet.ParseNets(strings.Join(list, ","))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	return nets, nil
}

// printUsage lists the flags and their variables.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, "keychest-amp: an ACME proxy that logs what ACME clients do (version %s).\n\n", version)
	fmt.Fprintf(w, "Flags (each also read from its variable):\n\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	envconfig.Usagef(envPrefix, &Config{}, tw, "{{range .}}{{usage_key .}}\t{{usage_default .}}\t{{usage_description .}}\n{{end}}")
	tw.Flush()
	fmt.Fprintf(w, "\n  -c, --ca: print the root certificate (PEM) and exit\n  -h, --help: this help\n")
}
