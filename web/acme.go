package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/handlers"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/store"
)

// Limits of one batch of ACME events.
const (
	maxEventsBody  = 8 << 20
	maxEventsBatch = 10000
	// acmeDomainsPerKey is the domain limit for domains added from
	// issued orders (KEYCHEST_MAX_DOMAINS_PER_KEY's default).
	acmeDomainsPerKey = 1000
)

// acmeStore is what the ingestion of ACME events needs.
type acmeStore interface {
	store.ACMEEvents
	KeyStatus(ctx context.Context, k store.KeyRef) (store.KeyStatus, error)
	AddDomain(ctx context.Context, d store.NewDomain) (store.AddResult, error)
}

// acmeEvents serves POST /api/v1/acme/events: JSON lines from keychest-amp,
// authenticated by the proxy's API key as a bearer token.
type acmeEvents struct {
	st  acmeStore
	log zerolog.Logger
}

// mountACME adds the events endpoint when the storage keeps ACME events.
func mountACME(mux *http.ServeMux, tokens store.Tokens, log zerolog.Logger) {
	if st, ok := tokens.(acmeStore); ok {
		mux.Handle("POST /api/v1/acme/events", &acmeEvents{st: st, log: log})
	}
}

func (h *acmeEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	events, err := parseEvents(http.MaxBytesReader(w, r.Body, maxEventsBody))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ip := peerAddr(r)
	unseen, err := h.st.UnseenACMEEvents(r.Context(), events)
	if err != nil {
		h.unavailable(w, err)
		return
	}
	added, err := h.addIssued(r, key, unseen)
	if err != nil {
		h.unavailable(w, err)
		return
	}
	res, err := h.st.StoreACMEEvents(r.Context(), key, ip, events)
	if err != nil {
		h.unavailable(w, err)
		return
	}
	h.log.Info().Str("code", logcode.ACMEEventsStored).Time("event_time", time.Now()).Str("subject", key.Prefix).Str("remote", ip.String()).
		Int("events", len(events)).Int("stored", res.Stored).Int("domains", added).Msg("ACME events stored")
	LogACMEChanges(h.log, logcode.ACMEEventFinding, res.Findings)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"stored": res.Stored, "duplicates": len(events) - res.Stored, "domains": added})
}

// LogACMEChanges logs, under code, each finding that ACME events or the
// renewal check opened, changed or closed.
func LogACMEChanges(log zerolog.Logger, code string, changes []store.ACMEChange) {
	for _, c := range changes {
		log.Info().Str("code", code).Time("event_time", time.Now()).Str("target", c.Target).Str("kind", c.Kind).
			Str("change", c.Change).Str("severity", c.Severity).Str("detail", c.Detail).Msg("ACME finding " + c.Change)
	}
}

// authenticate checks the bearer key as the line protocol does: by its
// hash; unknown and revoked keys get 401, a blocked account 403.
func (h *acmeEvents) authenticate(w http.ResponseWriter, r *http.Request) (store.KeyRef, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || len(raw) < 16 || len(raw) > 64 || strings.Trim(raw, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "an API key is required: Authorization: Bearer <key>", http.StatusUnauthorized)
		return store.KeyRef{}, false
	}
	key := store.KeyRef{Hash: sha256.Sum256([]byte(raw)), Prefix: raw[:8]}
	st, err := h.st.KeyStatus(r.Context(), key)
	switch {
	case errors.Is(err, store.ErrUnknownKey) || err == nil && st.Revoked:
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "unknown or revoked API key", http.StatusUnauthorized)
		return key, false
	case err != nil:
		h.unavailable(w, err)
		return key, false
	case st.Blocked:
		http.Error(w, "the account of this API key is blocked", http.StatusForbidden)
		return key, false
	}
	return key, true
}

func (h *acmeEvents) unavailable(w http.ResponseWriter, err error) {
	h.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("ACME events: database unreachable")
	http.Error(w, "database unavailable, retry later", http.StatusServiceUnavailable)
}

// addIssued adds, as domains of the key, every DNS identifier of an order
// that reached valid. It runs before the events are stored, so a batch
// that fails here is resent and tried again.
func (h *acmeEvents) addIssued(r *http.Request, key store.KeyRef, events []store.ACMEEvent) (int, error) {
	added := 0
	for _, name := range issuedNames(events) {
		d, perr := handlers.ParseDomain(name)
		if perr != nil {
			continue
		}
		res, err := h.st.AddDomain(r.Context(), store.NewDomain{Key: key, Name: d.Name, Port: d.Port, Wildcard: d.Wildcard,
			IP: peerAddr(r), MaxPerKey: acmeDomainsPerKey})
		switch {
		case errors.Is(err, store.ErrDomainLimit):
			h.log.Warn().Str("code", logcode.ACMEDomainLimit).Time("event_time", time.Now()).Str("subject", key.Prefix).Str("domain", d.Name).Msg("issued domain not added: the key is at its domain limit")
		case err != nil:
			return added, err
		case res.Outcome == store.DomainAdded:
			added++
		}
	}
	return added, nil
}

// issuedNames returns the DNS identifiers of orders that are valid.
func issuedNames(events []store.ACMEEvent) []string {
	var names []string
	for _, e := range events {
		if e.Msg != "order" && e.Msg != "final" && e.Msg != "new-order" {
			continue
		}
		var p struct {
			Status      string `json:"status"`
			Identifiers []struct{ Type, Value string }
			Domains     []struct{ Type, Value string }
		}
		if json.Unmarshal(e.Params, &p) != nil || p.Status != "valid" {
			continue
		}
		for _, id := range append(p.Identifiers, p.Domains...) {
			if id.Type == "dns" {
				names = append(names, id.Value)
			}
		}
	}
	return names
}

// parseEvents reads a batch of JSON lines in the seed's envelope.
func parseEvents(r io.Reader) ([]store.ACMEEvent, error) {
	var out []store.ACMEEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxEventsBody)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var env struct {
			Msg    string          `json:"msg"`
			Params json.RawMessage `json:"params"`
			Time   string          `json:"time"`
			Proxy  string          `json:"proxy"`
			ID     int64           `json:"id"`
		}
		if err := json.Unmarshal(line, &env); err != nil {
			return nil, fmt.Errorf("line %d: not JSON: %v", n, err)
		}
		if env.Proxy == "" || len(env.Proxy) > 254 || env.ID <= 0 || env.Msg == "" || len(env.Msg) > 32 ||
			len(env.Params) == 0 || env.Params[0] != '{' {
			return nil, fmt.Errorf("line %d: proxy, a positive id, msg and a params object are required", n)
		}
		if len(out) == maxEventsBatch {
			return nil, fmt.Errorf("more than %d events in one batch", maxEventsBatch)
		}
		t, _ := time.Parse("2006-01-02 15:04:05", env.Time)
		out = append(out, store.ACMEEvent{Proxy: env.Proxy, ID: env.ID, Msg: env.Msg, Time: t, Params: env.Params,
			Envelope: append(json.RawMessage(nil), line...)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no events")
	}
	return out, nil
}
