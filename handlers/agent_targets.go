// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// siteName is what a site is called (the same rule as agents.site).
var siteName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// addSiteArgs and certArgs are what "add ... site S" and "cert" take.
var (
	addSiteArgs = []string{"domain", "apikey", "site"}
	certArgs    = []string{"domain", "apikey"}
)

// siteTargets is the storage of targets behind sites, or a 503.
func (m *Mux) siteTargets() (store.SiteTargets, error) {
	if m.sites != nil {
		return m.sites, nil
	}
	return nil, lineproto.Errorf(lineproto.CodeUnavailable, "sites are not available on this server")
}

// addSite puts a name behind a site: it is probed only through the site's
// agents, never by the central monitor, on any port (the agents'
// allow.conf decides).
func (m *Mux) addSite(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, d, err := domainArgs(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	site, _ := req.Get("site")
	switch {
	case d.Wildcard:
		return lineproto.Reply{}, lineproto.Errorf(lineproto.CodeBadRequest, "a wildcard has no host to probe behind a site: add the names it covers")
	case !siteName.MatchString(site):
		return lineproto.Reply{}, lineproto.Errorf(lineproto.CodeBadRequest, "site must be 1 to 63 of [a-z0-9._-], as \"command agents\" shows it")
	}
	st, serr := m.siteTargets()
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	out, serr := st.AddSiteTarget(ctx, store.NewSiteTarget{Key: ref, Site: site, Name: d.Name, Port: d.Port, IP: req.Remote,
		MaxPerKey: m.cfg.MaxDomainsPerKey})
	switch {
	case errors.Is(serr, store.ErrNoSite):
		return lineproto.Reply{}, lineproto.Errorf(lineproto.CodeNotFound, "no claimed agent of this account serves site %s: see \"command agents\"", site)
	case serr != nil:
		return lineproto.Reply{}, agentError(serr)
	case out == store.DomainExists:
		return lineproto.OK(fmt.Sprintf("domain %s:%d already registered, now behind site %s", d.Name, d.Port, site)), nil
	}
	return lineproto.OK(fmt.Sprintf("domain %s:%d added behind site %s", d.Name, d.Port, site)), nil
}

// certSite answers "cert" for a target behind a site, with site=S (and
// revocation=ok|revoked|unknown|none once the service checked); other
// targets get the monitor's answer. A site without an agent that called
// in within KEYCHEST_AGENT_SILENT_AFTER reads class agent_unavailable;
// one with agents that have an open agent_silent finding ends its line
// with agent_silent=N, how many.
func (m *Mux) certSite(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	st := m.sites
	if st == nil {
		return m.cert(ctx, req)
	}
	ref, d, err := domainArgs(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	s, serr := st.SiteTargetStatus(ctx, ref, d.Name, d.Port, m.silentAfter())
	if errors.Is(serr, store.ErrNotFound) {
		return m.cert(ctx, req)
	}
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	if s.LiveAgents == 0 {
		s.Status.State, s.Status.Class = "unknown", string(monitor.ClassAgentUnavailable)
	}
	data := CertLine(s.Status, time.Now()) + " site=" + s.Site
	if s.Revocation != "" {
		data += " revocation=" + s.Revocation // the service's check of a relayed certificate
	}
	if s.SilentAgents > 0 {
		data += fmt.Sprintf(" agent_silent=%d", s.SilentAgents)
	}
	return lineproto.Reply{Data: data, Code: lineproto.CodeOK,
		Text: fmt.Sprintf("certificate of %s:%d", d.Name, d.Port)}, nil
}

// silentAfter is KEYCHEST_AGENT_SILENT_AFTER, or its default.
func (m *Mux) silentAfter() time.Duration {
	if m.cfg.AgentSilentAfter > 0 {
		return m.cfg.AgentSilentAfter
	}
	return DefaultAgentSilentAfter
}

// siteOr is a command on a domain that applies op to the key's target
// behind a site when it has one (answering done), else runs public, the
// command for the monitor's domains.
func (m *Mux) siteOr(op func(store.SiteTargets, context.Context, store.KeyRef, string, int) (bool, error), done func(names.Domain) string,
	public func(context.Context, *lineproto.Request) (lineproto.Reply, error)) func(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return func(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
		st := m.sites
		if st == nil {
			return public(ctx, req)
		}
		ref, d, err := domainArgs(req)
		if err != nil {
			return lineproto.Reply{}, err
		}
		found, serr := op(st, ctx, ref, d.Name, d.Port)
		switch {
		case serr != nil:
			return lineproto.Reply{}, serr
		case !found:
			return public(ctx, req)
		}
		return lineproto.OK(done(d)), nil
	}
}

// removedWords and checkWords are the replies of remove and check.
func removedWords(d names.Domain) string { return fmt.Sprintf("domain %s:%d removed", d.Name, d.Port) }
func checkWords(names.Domain) string     { return "check queued" }
