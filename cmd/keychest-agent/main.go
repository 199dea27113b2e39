// SPDX-License-Identifier: Apache-2.0

// Command keychest-agent extends KeyChest's monitor into a private
// network under a local allow-list. See docs/agent.md.
//
//	keychest-agent run        -e DIR --server URL   the service
//	keychest-agent once       -e DIR --server URL [--for 50s]   one pass, for cron
//	keychest-agent status     -e DIR
//	keychest-agent claim-code -e DIR --server URL
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/logcode"
)

// version is set by the build (-ldflags "-X main.version=...").
var version = "dev"

const usage = `usage: keychest-agent run|once|status|claim-code [flags]
  run         the service: register, heartbeat, take and relay jobs
  once        one pass for cron: register or heartbeat, run waiting jobs (--for), post logs, exit 0
  status      print id, claimed, site, server, last contact, allow-list
  claim-code  print a one-time code for "command claim agent CODE apikey K"
Run "keychest-agent run -h" for the flags; each is also a KEYCHESTAGENT_* variable.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main, returning the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd := args[0]
	cfg, err := parseFlags(cmd, args[1:], os.Getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintln(stderr, "keychest-agent:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "status":
		return status(cfg, stdout, stderr)
	case "run", "once", "claim-code":
		return serve(ctx, cmd, cfg, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return 2
}

// serve opens the agent and runs cmd.
func serve(ctx context.Context, cmd string, cfg agent.Config, stdout, stderr io.Writer) int {
	a, err := agent.Open(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "keychest-agent:", err)
		return 1
	}
	defer a.Close()
	switch cmd {
	case "run":
		err = a.Run(ctx, func() { daemon.SdNotify(false, daemon.SdNotifyReady) })
		a.Log.Info().Str("code", logcode.AgentStopping).Time("event_time", time.Now()).Msg("stopped")
	case "once":
		err = a.Once(ctx)
	case "claim-code":
		var code string
		var exp time.Time
		if code, exp, err = a.ClaimCode(ctx); err == nil {
			fmt.Fprintf(stdout, "%s\n", code)
			fmt.Fprintf(stderr, "send: command claim agent %s apikey YOUR-KEY (valid until %s)\n", code, exp.UTC().Format(time.RFC3339))
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "keychest-agent:", err)
		return 1
	}
	return 0
}

// status prints the agent's state from DIR.
func status(cfg agent.Config, stdout, stderr io.Writer) int {
	allow, err := agent.LoadAllow(cfg.Dir)
	if err == nil {
		err = agent.Status(stdout, cfg.Dir, allow)
	}
	if err != nil {
		fmt.Fprintln(stderr, "keychest-agent:", err)
		return 1
	}
	return 0
}
