// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// The bounds of one post of discovered endpoints.
const (
	maxDiscoveredBody  = 16 << 20
	maxDiscoveredNames = 200_000
)

// mountDiscover adds POST /api/v1/agent/discovered, and the LDAP
// certificates' route.
func mountDiscover(mux *http.ServeMux, h *agentAPI) {
	mux.HandleFunc("POST "+agent.PathDiscovered, h.discovered)
	mountDiscoverLDAP(mux, h)
}

// discovered stores one source's candidates from a claimed agent as
// proposals to its account (or targets, with auto_add).
func (h *agentAPI) discovered(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	b, skipped, err := readDiscovered(w, r)
	if err != nil {
		h.refuse(w, ref.Prefix, ip, http.StatusBadRequest, err.Error())
		return
	}
	b.AgentKey, b.MaxPerKey = ref, h.limits.MaxDomainsPerKey
	ctx, cancel := context.WithTimeout(r.Context(), agentTimeout)
	defer cancel()
	c, err := h.st.StoreDiscovered(ctx, b)
	if err != nil {
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	h.log.Info().Str("code", logcode.DiscoveredStored).Time("event_time", time.Now()).Str("subject", ref.Prefix).
		Str("remote", ip.String()).Str("source", b.Source).Int("candidates", len(b.Candidates)).Int("skipped", skipped).
		Int("proposed", c.Proposed).Int("seen", c.Seen).Int("gone", c.Gone).Int("added", c.Added).Int("not_added", c.Left).Msg("discovered endpoints stored")
	writeJSON(w, agent.DiscoveredReply{Proposed: c.Proposed, Seen: c.Seen, Gone: c.Gone, Added: c.Added, NotAdded: c.Left})
}

// readDiscovered reads and checks a post: its source must be
// "axfr:ZONE"; a candidate whose name "add domain" would refuse, or
// whose port or count is out of range, is skipped (and counted).
func readDiscovered(w http.ResponseWriter, r *http.Request) (store.DiscoveredBatch, int, error) {
	var p agent.DiscoveredPost
	var b store.DiscoveredBatch
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDiscoveredBody)).Decode(&p); err != nil {
		return b, 0, fmt.Errorf("want {\"source\",\"auto_add\",\"candidates\":[{\"name\",\"port\",\"addresses\"}]} of at most %d bytes", maxDiscoveredBody)
	}
	if zone, ok := strings.CutPrefix(p.Source, "axfr:"); !ok || !validZone(zone) {
		return b, 0, fmt.Errorf("source %q: want axfr:ZONE", cleanText(p.Source, 80))
	}
	if len(p.Candidates) > maxDiscoveredNames {
		return b, 0, fmt.Errorf("at most %d candidates a source", maxDiscoveredNames)
	}
	b.Source, b.AutoAdd = p.Source, p.AutoAdd
	skipped := 0
	for _, c := range p.Candidates {
		d, err := names.ParseDomain(c.Name)
		if err != nil || d.Wildcard || d.Name != c.Name || c.Port < 1 || c.Port > 65535 || c.Addresses < 0 || c.Addresses > 10000 {
			skipped++
			continue
		}
		b.Candidates = append(b.Candidates, store.DiscoveredName{Name: d.Name, Port: c.Port, Addresses: c.Addresses})
	}
	return b, skipped, nil
}

// validZone accepts a zone name as "add domain" would take it, or of a
// single label.
func validZone(z string) bool {
	if strings.Contains(z, ":") {
		return false
	}
	if d, err := names.ParseDomain(z); err == nil && d.Name == z && !d.Wildcard {
		return true
	}
	return singleLabelZone(z)
}

// singleLabelZone accepts a zone "add domain" would not (a single label
// such as "corp" or "lan"): lower-case letters, digits and hyphens.
func singleLabelZone(z string) bool {
	return z != "" && len(z) <= 63 && strings.Trim(z, "abcdefghijklmnopqrstuvwxyz0123456789-") == "" &&
		z[0] != '-' && z[len(z)-1] != '-'
}
