// SPDX-License-Identifier: Apache-2.0

// Package handlers says what each command of the line protocol means:
// it validates and normalises the arguments (with the rules of package
// names, whose refusals it answers with 400), calls the store, and words
// the reply. It knows nothing of sockets.
package handlers

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/ports"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// Config holds what the commands need besides the store.
type Config struct {
	Version          string // reported by "command version"
	MaxDomainsPerKey int    // "add" answers 403 past this many domains per key (0: no limit)
	// Abuse limits (0: none): new keys and claims per client address per
	// hour, counted in the database for every server (see internal/clientnet),
	// and mails per address per day (429, retry later); keys of an
	// unconfirmed account (403 until it is confirmed).
	KeysPerIPHour      int
	ClaimsPerIPHour    int
	MailsPerDay        int
	MaxUnconfirmedKeys int
	// MailQueued, when set, is called after a claim queued a mail.
	MailQueued func()
	// CheckEvery is how soon after its last probe "check" may probe a
	// target again.
	CheckEvery time.Duration
	// Watch, when set, is called after an active domain was added or a
	// check asked for: the monitor in this process looks at once.
	Watch func()
	// MonitorPorts are the ports "add" accepts (KEYCHEST_MONITOR_PORTS);
	// another port gets 400 with the list. Zero: ports.Default.
	MonitorPorts ports.Set
	// AgentSilentAfter is when "agents" shows an agent as silent
	// (KEYCHEST_AGENT_SILENT_AFTER; zero: 15 minutes).
	AgentSilentAfter time.Duration
}

// Mux routes each request to its verb. It implements lineproto.Handler.
type Mux struct {
	store     store.Store
	starter   store.AddStarter  // WithAddStarter; nil: every add waits on a worker
	agentDB   store.Agents      // WithAgents; nil: the agent commands answer 503
	sites     store.SiteTargets // WithSiteTargets; nil: no targets behind sites
	discovery store.Discovery   // WithDiscovery; nil: "discovered" and "ignore" answer 503
	cfg       Config
	log       zerolog.Logger
	verbs     map[string]verb
}

// verb describes one command: the names it takes (all required), whether
// it blocks on the store, and the function that runs it.
type verb struct {
	args     []string
	blocking bool
	run      func(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error)
}

// NewMux returns the handler for every command, backed by st.
func NewMux(st store.Store, cfg Config, log zerolog.Logger, opts ...Option) *Mux {
	if cfg.MonitorPorts.IsZero() {
		cfg.MonitorPorts = ports.DefaultSet()
	}
	m := &Mux{store: st, cfg: cfg, log: log}
	m.verbs = map[string]verb{
		"apikey":  {blocking: true, run: m.apikey},
		"claim":   {args: []string{"apikey", "email"}, blocking: true, run: m.claim},
		"add":     {args: []string{"domain", "apikey"}, blocking: true, run: m.add},
		"remove":  {args: []string{"domain", "apikey"}, blocking: true, run: m.remove},
		"status":  {args: []string{"apikey"}, blocking: true, run: m.status},
		"list":    {args: []string{"apikey"}, blocking: true, run: m.list},
		"cert":    {args: []string{"domain", "apikey"}, blocking: true, run: m.cert},
		"check":   {args: []string{"domain", "apikey"}, blocking: true, run: m.check},
		"ping":    {run: m.ping},
		"version": {run: m.version},
		"help":    {run: m.help},
		"quit":    {run: m.quit},
	}
	for _, o := range opts {
		o(m)
	}
	m.addAgentVerbs()
	return m
}

// Option gives a Mux a storage it uses besides its store.Store, given
// explicitly so that a storage whose methods drift fails the build.
type Option func(*Mux)

// WithAddStarter lets the event loop start an add without a worker (the
// group-commit writer answers it); without it every add waits on a worker.
func WithAddStarter(a store.AddStarter) Option { return func(m *Mux) { m.starter = a } }

// WithDiscovery gives "discovered" and "ignore" their storage; without
// it they answer 503.
func WithDiscovery(d store.Discovery) Option { return func(m *Mux) { m.discovery = d } }

// WithAgents gives "claim agent" and "agents" their storage; without it
// they answer 503.
func WithAgents(a store.Agents) Option { return func(m *Mux) { m.agentDB = a } }

// WithSiteTargets gives "add ... site", and "cert", "check" and "remove"
// of a target behind a site, their storage; without it "add ... site"
// answers 503 and the others know public targets only.
func WithSiteTargets(s store.SiteTargets) Option { return func(m *Mux) { m.sites = s } }

// Verbs lists the commands the Mux knows.
func (m *Mux) Verbs() []string {
	out := make([]string, 0, len(m.verbs))
	for v := range m.verbs {
		out = append(out, v)
	}
	return out
}

// Blocking reports whether req will reach the store. Requests that fail
// validation are answered on the event loop.
func (m *Mux) Blocking(req *lineproto.Request) bool {
	v, ok := m.verbOf(req)
	return ok && v.blocking && checkArgs(req, v.args) == nil
}

// The server starts adds through Start (lineproto.Starter).
var _ lineproto.Starter = (*Mux)(nil)

// Start begins req without blocking when it can: an add whose store
// queues it for group commit. done hears the reply, once, from another
// goroutine. It reports false for every other request.
func (m *Mux) Start(ctx context.Context, req *lineproto.Request, done func(lineproto.Reply)) bool {
	if req.Verb != "add" || checkArgs(req, m.verbs["add"].args) != nil {
		return false
	}
	return m.startAdd(ctx, req, done)
}

// Serve answers req. Errors become their status line; an unexpected one
// is logged with its detail and reported as 500.
func (m *Mux) Serve(ctx context.Context, req *lineproto.Request) lineproto.Reply {
	v, ok := m.verbOf(req)
	if !ok {
		return lineproto.Fail(lineproto.Errorf(lineproto.CodeBadRequest,
			"unknown command %q: send \"command help\"", req.Verb))
	}
	if err := checkArgs(req, v.args); err != nil {
		return lineproto.Fail(err)
	}
	reply, err := v.run(ctx, req)
	if err != nil {
		reply = lineproto.Fail(m.wireError(req, err))
	}
	return reply
}

// checkArgs makes sure req carries exactly the names the verb takes.
func checkArgs(req *lineproto.Request, names []string) *lineproto.Error {
	for _, a := range req.Args {
		if !contains(names, a.Name) {
			return lineproto.Errorf(lineproto.CodeBadRequest,
				"command %s does not take %q (it takes: %s)", req.Verb, a.Name, usage(names))
		}
	}
	for _, n := range names {
		if _, ok := req.Get(n); !ok {
			return lineproto.Errorf(lineproto.CodeBadRequest, "command %s needs %q", req.Verb, n)
		}
	}
	return nil
}

func usage(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// wireError maps an error to the status the client sees.
func (m *Mux) wireError(req *lineproto.Request, err error) *lineproto.Error {
	var wire *lineproto.Error
	switch {
	case errors.As(err, &wire):
		return wire
	case errors.Is(err, store.ErrUnknownKey):
		return lineproto.Errorf(lineproto.CodeUnknownKey,
			"unknown apikey: get one with \"command apikey\" or claim your own first")
	case errors.Is(err, store.ErrKeyClaimed):
		return lineproto.Errorf(lineproto.CodeConflict, "apikey already belongs to another email")
	case errors.Is(err, store.ErrKeyRevoked):
		return lineproto.Errorf(lineproto.CodeForbidden, "apikey revoked: get a new one with \"command apikey\"")
	case errors.Is(err, store.ErrAccountBlocked):
		return lineproto.Errorf(lineproto.CodeForbidden, "account blocked by its owner")
	case errors.Is(err, store.ErrDomainLimit):
		return lineproto.Errorf(lineproto.CodeForbidden,
			"this apikey already has %d domains, the most one key may hold: remove one or use another key",
			m.cfg.MaxDomainsPerKey)
	case errors.Is(err, store.ErrMailLimit):
		return lineproto.Errorf(lineproto.CodeTooMany,
			"%d mails sent to this address today; retry in 24h", m.cfg.MailsPerDay)
	case errors.Is(err, store.ErrUnconfirmedKeys):
		return lineproto.Errorf(lineproto.CodeForbidden,
			"this account holds %d keys and is not confirmed: confirm it from its mail before claiming more",
			m.cfg.MaxUnconfirmedKeys)
	case errors.Is(err, store.ErrRefused):
		return lineproto.Errorf(lineproto.CodeBadRequest, "%s", err)
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		m.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Str("verb", req.Verb).Err(err).Msg("database unavailable")
		return lineproto.Errorf(lineproto.CodeUnavailable, "database unavailable, retry shortly")
	}
	m.log.Error().Str("code", logcode.Internal).Time("event_time", time.Now()).Str("verb", req.Verb).Err(err).Msg("command failed")
	return lineproto.Errorf(lineproto.CodeInternal, "internal error")
}
