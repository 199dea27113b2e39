// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// addDiscoveryVerbs adds "discovered" and "ignore" to the table.
func (m *Mux) addDiscoveryVerbs() {
	m.verbs["discovered"] = verb{args: []string{"apikey"}, blocking: true, run: m.discovered}
	m.verbs["ignore"] = verb{args: []string{"domain", "apikey"}, blocking: true, run: m.ignore}
}

// discoveryStore is the storage of proposals, or a 503.
func (m *Mux) discoveryStore() (store.Discovery, error) {
	if m.discovery != nil {
		return m.discovery, nil
	}
	return nil, lineproto.Errorf(lineproto.CodeUnavailable, "discovery is not available on this server")
}

// discoveredBudget is what the data line of "discovered" may use.
const discoveredBudget = 900

// discovered lists the proposals of the key's account on one data line,
// each "name:port site=S source=axfr:ZONE first_seen=... addresses=N"
// (and "gone=..." once its zone no longer has it), separated by " ; ",
// cut to fit. Ignored proposals and those already added are not shown.
func (m *Mux) discovered(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, err := keyArg(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	st, serr := m.discoveryStore()
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	list, serr := st.AccountDiscovered(ctx, ref)
	if serr != nil {
		return lineproto.Reply{}, agentError(serr)
	}
	items := make([]string, len(list))
	for i, d := range list {
		items[i] = DiscoveredLine(d)
	}
	data := dataLine(items, " ; ", discoveredBudget)
	return lineproto.Reply{Data: data, Code: lineproto.CodeOK, Text: words.Count(len(list), "proposal")}, nil
}

// DiscoveredLine is one proposal as "discovered" shows it.
func DiscoveredLine(d store.Discovered) string {
	s := fmt.Sprintf("%s:%d site=%s source=%s first_seen=%s addresses=%d", d.Name, d.Port, d.Site, wordOf(d.Source),
		d.FirstSeen.UTC().Format(time.RFC3339), d.Addresses)
	if d.Gone != nil {
		s += " gone=" + d.Gone.UTC().Format(time.RFC3339)
	}
	return s
}

// ignore hides the account's proposal of a name:port for good: it is not
// listed again, and auto_add never adds it.
func (m *Mux) ignore(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, d, err := domainArgs(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	st, serr := m.discoveryStore()
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	ok, serr := st.IgnoreDiscovered(ctx, ref, d.Name, d.Port)
	switch {
	case serr != nil:
		return lineproto.Reply{}, agentError(serr)
	case !ok:
		return lineproto.Reply{}, lineproto.Errorf(lineproto.CodeNotFound, "no proposal %s:%d to ignore: see \"command discovered\"", d.Name, d.Port)
	}
	return lineproto.OK(fmt.Sprintf("proposal %s:%d ignored for good", d.Name, d.Port)), nil
}

// discoveryWords is " discovery_failing=N" for an agent whose last
// discovery pass could not read N sources (their codes are in its log).
func discoveryWords(a store.Agent) string {
	if a.DiscoveryFailing > 0 {
		return fmt.Sprintf(" discovery_failing=%d", a.DiscoveryFailing)
	}
	return ""
}
