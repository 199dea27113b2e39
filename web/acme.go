// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// Fixed limits of one batch of ACME events.
const (
	maxEventsBody = 8 << 20
	// acmeTimeout bounds a batch's transaction; a client that goes away
	// ends it sooner, and nothing of the batch is committed.
	acmeTimeout = 20 * time.Second
)

// ACMELimits are the settings of POST /api/v1/acme/events.
type ACMELimits struct {
	MaxEvents        int // events per request; past it: 413 (KEYCHEST_ACME_MAX_EVENTS)
	MaxNames         int // DNS names per request, summed over its events; past it: 413 (KEYCHEST_ACME_MAX_NAMES)
	RowsPerKeyHour   int // rows (an event, and each name it gives) a key may post per hour; past it: 429 (0: no limit)
	MaxDomainsPerKey int // domains issued orders may add to a key (KEYCHEST_MAX_DOMAINS_PER_KEY; 0: no limit)
}

// DefaultACMELimits are the settings' defaults.
var DefaultACMELimits = ACMELimits{MaxEvents: 1000, MaxNames: 5000, RowsPerKeyHour: 50000, MaxDomainsPerKey: 1000}

// acmeEvents serves POST /api/v1/acme/events: JSON lines from keychest-amp,
// authenticated by the proxy's API key as a bearer token.
type acmeEvents struct {
	st      ACMEStore
	log     zerolog.Logger
	limits  ACMELimits
	proxies []netip.Prefix
}

func (h *acmeEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	key, ok := h.authenticate(w, r, ip)
	if !ok {
		return
	}
	events, cost, err := h.parse(w, r)
	if err != nil {
		h.refuse(w, key, ip, requestCode(err), err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), acmeTimeout)
	defer cancel()
	res, err := h.st.StoreACMEEvents(ctx, store.ACMEBatch{Key: key, IP: ip, Events: events,
		MaxDomainsPerKey: h.limits.MaxDomainsPerKey, RowsPerHour: h.limits.RowsPerKeyHour, Cost: cost})
	if err != nil {
		h.storeFailed(w, r, key, ip, err)
		return
	}
	for _, name := range res.Refused {
		h.log.Warn().Str("code", logcode.ACMEDomainLimit).Time("event_time", time.Now()).Str("subject", key.Prefix).Str("domain", name).Msg("issued domain not added: the key is at its domain limit")
	}
	h.log.Info().Str("code", logcode.ACMEEventsStored).Time("event_time", time.Now()).Str("subject", key.Prefix).Str("remote", ip.String()).
		Int("events", len(events)).Int("stored", res.Stored).Int("domains", res.Added).Msg("ACME events stored")
	LogACMEChanges(h.log, logcode.ACMEEventFinding, res.Findings)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"stored": res.Stored, "duplicates": len(events) - res.Stored, "domains": res.Added})
}

// LogACMEChanges logs, under code, each finding that ACME events or the
// renewal check opened, changed or closed.
func LogACMEChanges(log zerolog.Logger, code string, changes []store.ACMEChange) {
	for _, c := range changes {
		log.Info().Str("code", code).Time("event_time", time.Now()).Str("target", c.Target).Str("kind", c.Kind).
			Str("change", c.Change).Str("severity", c.Severity).Str("detail", c.Detail).Msg("ACME finding " + c.Change)
	}
}

// notAllowed is the answer to a key that may not post events.
const notAllowed = "only a claimed API key of a confirmed account may post ACME events: claim the key (command claim) and confirm the account from the mail"

// authenticate checks the bearer key as the line protocol does: by its
// hash; unknown and revoked keys get 401, a blocked account 403, and so
// does a key that is not claimed or whose account is not confirmed.
func (h *acmeEvents) authenticate(w http.ResponseWriter, r *http.Request, ip netip.Addr) (store.KeyRef, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	ref, err := names.ParseAPIKey(raw)
	if !ok || err != nil {
		w.Header().Set("WWW-Authenticate", "Bearer")
		http.Error(w, "an API key is required: Authorization: Bearer <key>", http.StatusUnauthorized)
		return store.KeyRef{}, false
	}
	key := ref
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
		h.refuse(w, key, ip, http.StatusForbidden, "the account of this API key is blocked")
		return key, false
	case st.Email == "" || !st.Confirmed:
		h.refuse(w, key, ip, http.StatusForbidden, notAllowed)
		return key, false
	}
	return key, true
}

// storeFailed answers a batch the storage did not take.
func (h *acmeEvents) storeFailed(w http.ResponseWriter, r *http.Request, key store.KeyRef, ip netip.Addr, err error) {
	var budget *store.BudgetError
	switch {
	case errors.As(err, &budget):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(budget.Wait.Seconds()))))
		h.refuse(w, key, ip, http.StatusTooManyRequests, fmt.Sprintf("%v (%d rows an hour: one per event and one per name it gives)", err, h.limits.RowsPerKeyHour))
	case errors.Is(err, store.ErrUnknownKey) || errors.Is(err, store.ErrKeyRevoked):
		http.Error(w, "unknown or revoked API key", http.StatusUnauthorized)
	case errors.Is(err, store.ErrAccountBlocked):
		h.refuse(w, key, ip, http.StatusForbidden, "the account of this API key is blocked")
	case errors.Is(err, store.ErrACMENotAllowed):
		h.refuse(w, key, ip, http.StatusForbidden, notAllowed)
	case r.Context().Err() != nil:
		h.refuse(w, key, ip, http.StatusServiceUnavailable, "the client went away: nothing of the batch was stored")
	default:
		h.unavailable(w, err)
	}
}

// refuse answers code with why, and logs it.
func (h *acmeEvents) refuse(w http.ResponseWriter, key store.KeyRef, ip netip.Addr, code int, why string) {
	h.log.Warn().Str("code", logcode.ACMEEventsRefused).Time("event_time", time.Now()).Str("subject", key.Prefix).
		Str("remote", ip.String()).Int("status", code).Str("reason", why).Msg("ACME events refused")
	http.Error(w, why, code)
}

func (h *acmeEvents) unavailable(w http.ResponseWriter, err error) {
	h.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("ACME events: database unreachable")
	http.Error(w, "database unavailable, retry later", http.StatusServiceUnavailable)
}
