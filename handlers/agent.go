// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// DefaultAgentSilentAfter is when an agent that has not called in reads
// as silent (KEYCHEST_AGENT_SILENT_AFTER).
const DefaultAgentSilentAfter = 15 * time.Minute

// claimAgentArgs are what "claim agent CODE apikey K" takes: a "claim"
// that names an agent instead of an email.
var claimAgentArgs = []string{"agent", "apikey"}

// addAgentVerbs adds the agent commands to the table.
func (m *Mux) addAgentVerbs() {
	m.verbs["agents"] = verb{args: []string{"apikey"}, blocking: true, run: m.agents}
	m.addDiscoveryVerbs()
}

// verbOf is the verb that serves req: "claim" with "agent" is the claim
// of an agent, "add" with "site" puts a name behind a site, "cert",
// "remove" and "check" also know targets behind sites; every other verb
// is the table's.
func (m *Mux) verbOf(req *lineproto.Request) (verb, bool) {
	_, agentArg := req.Get("agent")
	_, siteArg := req.Get("site")
	switch {
	case req.Verb == "claim" && agentArg:
		return verb{args: claimAgentArgs, blocking: true, run: m.claimAgent}, true
	case req.Verb == "add" && siteArg:
		return verb{args: addSiteArgs, blocking: true, run: m.addSite}, true
	case req.Verb == "cert":
		return verb{args: certArgs, blocking: true, run: m.certSite}, true
	case req.Verb == "remove":
		return verb{args: certArgs, blocking: true, run: m.siteOr(store.SiteTargets.RemoveSiteTarget, removedWords, m.remove)}, true
	case req.Verb == "check":
		return verb{args: certArgs, blocking: true, run: m.siteOr(store.SiteTargets.CheckSiteTarget, checkWords, m.check)}, true
	}
	v, ok := m.verbs[req.Verb]
	return v, ok
}

// agentStore is the storage of agents, or a 503 when there is none.
func (m *Mux) agentStore() (store.Agents, error) {
	if m.agentDB != nil {
		return m.agentDB, nil
	}
	return nil, lineproto.Errorf(lineproto.CodeUnavailable, "agents are not available on this server")
}

// claimAgent gives the agent whose claim code is sent to the account of
// the key: the code exists only on the agent's machine and at the
// server, so the claim proves the owner can read that machine.
func (m *Mux) claimAgent(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, err := keyArg(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	raw, _ := req.Get("agent")
	hash, ok := agent.ClaimCodeHash(raw)
	if !ok {
		return lineproto.Reply{}, lineproto.Errorf(lineproto.CodeBadRequest,
			"agent wants the code \"keychest-agent claim-code\" printed, such as 7K3QX-M9P2A")
	}
	st, serr := m.agentStore()
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	a, serr := st.ClaimAgent(ctx, store.AgentClaim{Owner: ref, CodeHash: hash, IP: req.Remote, MaxPerIPHour: m.cfg.ClaimsPerIPHour})
	if serr != nil {
		return lineproto.Reply{}, agentError(serr)
	}
	return lineproto.Reply{Data: m.agentLine(a, time.Now()), Code: lineproto.CodeOK,
		Text: fmt.Sprintf("agent %s claimed for site %s", a.ID, a.Site)}, nil
}

// agentsBudget is what the data line of "agents" may use.
const agentsBudget = 900

// agents lists the agents of the key's account on one data line, each
// "id=... site=... host=... version=... claimed=yes last_seen=...
// state=ok|silent|refusing", separated by " ; ", cut to fit.
func (m *Mux) agents(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, err := keyArg(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	st, serr := m.agentStore()
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	list, serr := st.AccountAgents(ctx, ref)
	if serr != nil {
		return lineproto.Reply{}, agentError(serr)
	}
	now := time.Now()
	items := make([]string, len(list))
	for i, a := range list {
		items[i] = m.agentLine(a, now)
	}
	data := dataLine(items, " ; ", agentsBudget)
	return lineproto.Reply{Data: data, Code: lineproto.CodeOK, Text: words.Count(len(list), "agent")}, nil
}

// agentLine is one agent as "agents" shows it.
func (m *Mux) agentLine(a store.Agent, now time.Time) string {
	return fmt.Sprintf("id=%s site=%s host=%s version=%s claimed=%s last_seen=%s state=%s",
		a.ID, a.Site, orDash(wordOf(a.Host)), orDash(wordOf(a.Version)), yesNo(a.Claimed),
		a.LastSeen.UTC().Format(time.RFC3339), AgentState(a, now, m.silentAfter())) + discoveryWords(a)
}

// AgentState is ok, silent (no call for silentAfter,
// KEYCHEST_AGENT_SILENT_AFTER) or refusing (its allow.conf refused a
// connection since the heartbeat before).
func AgentState(a store.Agent, now time.Time, silentAfter time.Duration) string {
	switch {
	case now.Sub(a.LastSeen) > silentAfter:
		return "silent"
	case a.Refusing:
		return "refusing"
	}
	return "ok"
}

// wordOf keeps a value one word of a key=value line: spaces and "=" from
// an agent's own text become "_".
func wordOf(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '=' || r == ';' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
}

// agentError maps the agent errors of the store to their status lines.
func agentError(err error) error {
	switch {
	case errors.Is(err, store.ErrClaimCode):
		return lineproto.Errorf(lineproto.CodeNotFound,
			"no agent waits for this code: it is wrong, used or expired; run \"keychest-agent claim-code\" for a new one")
	case errors.Is(err, store.ErrAgentOwner):
		return lineproto.Errorf(lineproto.CodeForbidden,
			"only a claimed key of a confirmed account may claim or list agents: claim the key and confirm the account from its mail")
	case errors.Is(err, store.ErrRateLimited):
		var le *store.LimitError
		errors.As(err, &le)
		return lineproto.Errorf(lineproto.CodeTooMany, "too many agent claims from %s; retry in %s", le.From(), le.Wait.Round(time.Second))
	}
	return err
}
