// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// Config holds the agent's settings (flags, or KEYCHESTAGENT_* variables).
type Config struct {
	Dir       string        // -e, DIR: identity, allow.conf, logs (default /etc/keychest-agent)
	Server    string        // --server: keychest-lined's web URL
	Site      string        // --site: the site the agent serves (default: its host name, at the server)
	CAFile    string        // --ca: PEM CAs to trust for the server
	SiteCA    string        // --site-ca: PEM CAs its site's targets use, pushed to the server
	Log       string        // --log: "" DIR/agent.log, "-" stdout, else a file
	Resolver  string        // --resolver host:port: the DNS server for the targets' names
	Heartbeat time.Duration // --heartbeat: between heartbeats (jittered ±10%)
	For       time.Duration // --for: how long "once" may take
	// StartJitter (--start-jitter): run waits a random part of it before
	// its first contact, so that agents restarted together spread out.
	StartJitter time.Duration
	Version     string
	// RetryBase is the first back-off step after a failed contact (2s;
	// tests shorten it). Steps double up to 5 minutes.
	RetryBase time.Duration
	// Stderr hears what cannot go to the log (nil: os.Stderr).
	Stderr io.Writer
	// UID is the agent's own user, which may own DIR and allow.conf
	// besides root (os.Getuid()).
	UID int
	// DiscoverEvery is --discover-every: between discovery passes (6h).
	DiscoverEvery time.Duration
	// Email is --email: while unclaimed, the agent asks the server to mail
	// this address a link that gives the agent to its account.
	Email string
}

// DefaultDir is DIR when none is given.
const DefaultDir = "/etc/keychest-agent"

// Agent is one running keychest-agent.
type Agent struct {
	cfg      Config
	Log      zerolog.Logger
	logOut   io.Closer
	spool    *Spool
	client   *Client
	allow    Allow
	guard    *Guard
	refusing atomic.Bool
	discover Discover
	// discoveryFailed counts the sources the last discovery pass could not read.
	discoveryFailed atomic.Int32
	// discovering: run's discovery pass is under way beside the job loop
	// (discovered: one has succeeded since the start); discoveryDone
	// ends when it finishes.
	discovering, discovered atomic.Bool
	discoveryDone           sync.WaitGroup
	// emailHeld: this process logged that it asks no more claim mails.
	emailHeld atomic.Bool
}

// Open checks DIR and allow.conf and opens the log. It fails, with the
// failure logged under its code, when DIR or allow.conf may be written by
// anyone but root or the agent's user, or when allow.conf does not parse.
func Open(cfg Config) (*Agent, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultDir
	}
	if cfg.For <= 0 {
		cfg.For = 50 * time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 2 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Minute
	}
	if cfg.DiscoverEvery <= 0 {
		cfg.DiscoverEvery = DefaultDiscoverEvery
	}
	if err := EnsureDir(cfg.Dir); err != nil {
		return nil, fmt.Errorf("DIR %s: %w", cfg.Dir, err)
	}
	// Nothing is opened in an untrusted DIR (a planted symbolic link
	// could turn the log into a write elsewhere): its refusal goes to stderr.
	if err := checkOwner(cfg.Dir, cfg.UID, true); err != nil {
		stderr := cfg.Stderr
		if stderr == nil {
			stderr = os.Stderr
		}
		l := NewLogger(stderr, nil, cfg.Version)
		l.Error().Str("code", logcode.AgentInsecureFiles).Time("event_time", time.Now()).Str("path", cfg.Dir).Err(err).
			Msg("refusing to start: DIR or allow.conf is writable by others")
		return nil, err
	}
	out, err := OpenLog(cfg.Dir, cfg.Log)
	if err != nil {
		return nil, fmt.Errorf("--log: %w", err)
	}
	a := &Agent{cfg: cfg, logOut: out, spool: NewSpool(cfg.Dir)}
	a.Log = NewLogger(out, a.spool, cfg.Version)
	if err := a.load(); err != nil {
		out.Close()
		return nil, err
	}
	return a, nil
}

// load applies the ownership rule, parses allow.conf and makes the client.
func (a *Agent) load() error {
	if err := CheckOwnership(a.cfg.Dir, a.cfg.UID); err != nil {
		a.event(a.Log.Error(), logcode.AgentInsecureFiles).Str("path", pathOf(err)).Err(err).
			Msg("refusing to start: DIR or allow.conf is writable by others")
		return err
	}
	raw, err := os.ReadFile(filepath.Join(a.cfg.Dir, "allow.conf"))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	if a.allow, err = ParseAllow(string(raw)); err != nil {
		a.event(a.Log.Error(), logcode.AgentBadAllow).Err(err).Msg("refusing to start: allow.conf does not parse")
		return err
	}
	if err := a.loadDiscover(); err != nil {
		return err
	}
	a.guard = &Guard{Allow: a.allow, Refused: a.refused}
	if a.client, err = NewClient(a.cfg.Server, a.cfg.CAFile); err != nil {
		a.event(a.Log.Error(), logcode.AgentCannotRun).Err(err).Msg("cannot run")
		return err
	}
	return nil
}

// Config is the agent's settings, defaults applied.
func (a *Agent) Config() Config { return a.cfg }

// Close closes the log.
func (a *Agent) Close() error { return a.logOut.Close() }

// Guard is the allow-list check every job's connection passes.
func (a *Agent) Guard() *Guard { return a.guard }

// Allow is the parsed allow.conf.
func (a *Agent) Allow() Allow { return a.allow }

// refused logs a connection allow.conf refused.
func (a *Agent) refused(e *RefusedError) {
	a.refusing.Store(true)
	a.event(a.Log.Warn(), logcode.AgentDialRefused).Str("target", e.Addr.String()).Str("name", e.Name).
		Msg("connection refused by allow.conf; no packet sent")
}

// event starts an entry with its code and event time.
func (a *Agent) event(e *zerolog.Event, code string) *zerolog.Event {
	return e.Str("code", code).Time("event_time", time.Now())
}

// Summary is what the agent pushes to the server.
func (a *Agent) Summary() (Summary, error) {
	host, _ := os.Hostname()
	s := Summary{Host: host, Version: a.cfg.Version, OS: runtime.GOOS, Arch: runtime.GOARCH,
		Site: a.cfg.Site, Allow: a.allow.Strings(), Refusing: a.refusing.Load(),
		Discovery: a.discover.Strings(), DiscoveryFailed: int(a.discoveryFailed.Load())}
	for _, ip := range hostAddrs() {
		s.Addresses = append(s.Addresses, ip.String())
	}
	if a.cfg.SiteCA != "" {
		pems, err := readPEMCerts(a.cfg.SiteCA)
		if err != nil {
			return s, fmt.Errorf("--site-ca: %w", err)
		}
		s.SiteCAs = pems
	}
	return s, nil
}

func pathOf(err error) string {
	var oe *OwnershipError
	if errors.As(err, &oe) {
		return oe.Path
	}
	return ""
}
