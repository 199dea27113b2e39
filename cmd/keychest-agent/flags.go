// SPDX-License-Identifier: Apache-2.0

package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/agent"
)

// envPrefix names the variables that give the flags' defaults:
// KEYCHESTAGENT_SERVER for --server, and so on (DIR: KEYCHESTAGENT_DIR).
const envPrefix = "KEYCHESTAGENT_"

// parseFlags reads cmd's flags, each defaulting to its KEYCHESTAGENT_*
// variable, then to its built-in default.
func parseFlags(cmd string, args []string, getenv func(string) string, stderr io.Writer) (agent.Config, error) {
	cfg := agent.Config{Version: version, UID: os.Getuid()}
	fs := flag.NewFlagSet("keychest-agent "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(envPrefix + name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&cfg.Dir, "e", env("DIR", agent.DefaultDir), "DIR: identity, allow.conf, agent.log ($KEYCHESTAGENT_DIR)")
	fs.StringVar(&cfg.Server, "server", env("SERVER", ""), "keychest-lined's URL, https:// (http:// only to loopback) ($KEYCHESTAGENT_SERVER)")
	fs.StringVar(&cfg.Site, "site", env("SITE", ""), "the site this agent serves; default: its host name ($KEYCHESTAGENT_SITE)")
	fs.StringVar(&cfg.CAFile, "ca", env("CA", ""), "PEM file of the CAs to trust for the server ($KEYCHESTAGENT_CA)")
	fs.StringVar(&cfg.SiteCA, "site-ca", env("SITE_CA", ""), "PEM file of internal CAs for the site's targets, pushed to the server ($KEYCHESTAGENT_SITE_CA)")
	fs.StringVar(&cfg.Log, "log", env("LOG", ""), "log destination: - for stdout; default DIR/agent.log ($KEYCHESTAGENT_LOG)")
	fs.StringVar(&cfg.Email, "email", env("EMAIL", ""), "run, once: ask the server to mail this address the link that claims the agent ($KEYCHESTAGENT_EMAIL)")
	fs.StringVar(&cfg.Resolver, "resolver", env("RESOLVER", ""), "DNS server host:port for the targets' names ($KEYCHESTAGENT_RESOLVER)")
	var hb, forDur, startJitter string
	fs.StringVar(&hb, "heartbeat", env("HEARTBEAT", "60s"), "time between heartbeats, jittered ±10% ($KEYCHESTAGENT_HEARTBEAT)")
	fs.StringVar(&forDur, "for", env("FOR", "50s"), "once: the most the pass may take ($KEYCHESTAGENT_FOR)")
	fs.StringVar(&startJitter, "start-jitter", env("START_JITTER", "0s"), "run: wait a random part of this before the first contact ($KEYCHESTAGENT_START_JITTER)")
	var discoverEvery string
	fs.StringVar(&discoverEvery, "discover-every", env("DISCOVER_EVERY", "6h"), "time between transfers of discover.conf's zones ($KEYCHESTAGENT_DISCOVER_EVERY)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected %q", strings.Join(fs.Args(), " "))
	}
	var err error
	if cfg.Heartbeat, err = positive("heartbeat", hb); err != nil {
		return cfg, err
	}
	if cfg.For, err = positive("for", forDur); err != nil {
		return cfg, err
	}
	if cfg.StartJitter, err = time.ParseDuration(startJitter); err != nil || cfg.StartJitter < 0 {
		return cfg, fmt.Errorf("--start-jitter %q: want a duration such as 30s, or 0s", startJitter)
	}
	if cfg.DiscoverEvery, err = positive("discover-every", discoverEvery); err != nil {
		return cfg, err
	}
	if cmd != "status" && cfg.Server == "" {
		return cfg, fmt.Errorf("--server (or KEYCHESTAGENT_SERVER) is required")
	}
	return cfg, nil
}

func positive(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--%s %q: want a positive duration such as 50s", name, s)
	}
	return d, nil
}
