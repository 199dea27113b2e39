// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/store"
)

// AgentLimits are the settings of the agent API (/api/v1/agent/).
type AgentLimits struct {
	RegistersPerIPHour int           // registrations per client per hour (0: no limit)
	ClaimCodeTTL       time.Duration // how long a claim code works
	LogKeep            time.Duration // how long agents' logs are kept (KEYCHEST_AGENT_LOG_DAYS)
	Heartbeat          time.Duration // the heartbeat interval agents are told
	JobTTL             time.Duration // how long a job lives (KEYCHEST_AGENT_JOB_TTL)
	// ClaimsPerIPHour and MailsPerDay limit run --email as they limit a
	// key's claim (KEYCHEST_LIMIT_CLAIMS_PER_IP_HOUR, _MAILS_PER_DAY); 0: no limit.
	ClaimsPerIPHour, MailsPerDay int
	// Policy is the monitor's judge and schedule (the KEYCHEST_MONITOR_WARN_*
	// and CRIT_* thresholds among them), applied to relayed probes as to
	// public ones; its zero value takes monitor.DefaultPolicy.
	Policy monitor.Policy
	// AlertBatch is how long an account's alert mail gathers findings
	// (KEYCHEST_ALERT_BATCH); 0: finding.DefaultAlertBatch.
	AlertBatch time.Duration
	// Roots are the CAs relayed probes trust besides a site's own
	// (KEYCHEST_MONITOR_CA_FILE); nil: the system's.
	Roots *x509.CertPool
	// MaxDomainsPerKey caps what auto_add adds through a key, its public
	// domains counted (KEYCHEST_MAX_DOMAINS_PER_KEY; 0: no limit).
	MaxDomainsPerKey int
	// Revocation checks relayed certificates' CRL or OCSP responder from
	// the service itself, through the monitor's address guard (never
	// through the agent); nil: no check.
	Revocation *monitor.Revocation
}

// DefaultAgentLimits are the agent API's defaults.
var DefaultAgentLimits = AgentLimits{RegistersPerIPHour: 20, ClaimCodeTTL: time.Hour,
	LogKeep: 30 * 24 * time.Hour, Heartbeat: time.Minute, JobTTL: time.Minute, Policy: monitor.DefaultPolicy(),
	AlertBatch: finding.DefaultAlertBatch}

// orDefaults is l with DefaultAgentLimits' value for each zero field.
func (l AgentLimits) orDefaults() AgentLimits {
	d := DefaultAgentLimits
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	if l.RegistersPerIPHour > 0 {
		d.RegistersPerIPHour = l.RegistersPerIPHour
	}
	d.ClaimCodeTTL, d.LogKeep = pick(l.ClaimCodeTTL, d.ClaimCodeTTL), pick(l.LogKeep, d.LogKeep)
	d.Heartbeat, d.JobTTL, d.AlertBatch = pick(l.Heartbeat, d.Heartbeat), pick(l.JobTTL, d.JobTTL), pick(l.AlertBatch, d.AlertBatch)
	if l.Policy.Interval > 0 {
		d.Policy = l.Policy
	}
	d.Roots, d.Revocation = l.Roots, l.Revocation
	d.ClaimsPerIPHour, d.MailsPerDay = l.ClaimsPerIPHour, l.MailsPerDay
	d.MaxDomainsPerKey = l.MaxDomainsPerKey
	return d
}

// AgentStore is what the agent API needs of the storage: the agents,
// their jobs and the targets behind their sites.
type AgentStore interface {
	store.Agents
	store.AgentJobs
	store.SiteTargets
	store.SiteJudge
	store.Discovery
	store.DiscoveredCerts
	AgentEmailStore
}

// agentAPI serves /api/v1/agent/: registration, heartbeats, claim codes
// and logs. Every call but register is authenticated by the agent's own
// key as a bearer token, which no line command accepts.
type agentAPI struct {
	st      AgentStore
	log     zerolog.Logger
	limits  AgentLimits
	proxies []netip.Prefix
	watch   func() // Deps.Watch
}

// agentTimeout bounds one call's database work.
const agentTimeout = 20 * time.Second

// mountAgent adds the agent API when d gives its store.
func mountAgent(mux *http.ServeMux, d Deps) {
	if d.Agents == nil {
		return
	}
	h := &agentAPI{st: d.Agents, log: d.Log, limits: d.AgentLimits.orDefaults(), proxies: d.Proxies, watch: d.Watch}
	mux.HandleFunc("POST "+agent.PathRegister, h.register)
	mux.HandleFunc("POST "+agent.PathHeartbeat, h.heartbeat)
	mux.HandleFunc("POST "+agent.PathClaimCode, h.claimCode)
	mux.HandleFunc("POST "+agent.PathLogs, h.logs)
	mux.HandleFunc("POST "+agent.PathClaimEmail, h.claimEmail)
	mountAgentJobs(mux, h)
	mountDiscover(mux, h)
}

func (h *agentAPI) register(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	sum, raw, err := readSummary(w, r)
	if err != nil {
		h.refuse(w, "", ip, http.StatusBadRequest, err.Error())
		return
	}
	key := newAgentKey()
	id := newAgentID(r.Host)
	ref := agentKeyRef(key)
	ctx, cancel := context.WithTimeout(r.Context(), agentTimeout)
	defer cancel()
	err = h.st.RegisterAgent(ctx, store.NewAgent{ID: id, Key: ref, Site: siteOf(sum), Host: sum.Host,
		Version: sum.Version, Summary: raw, IP: ip, MaxPerIPHour: h.limits.RegistersPerIPHour})
	if err != nil {
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	h.log.Info().Str("code", logcode.AgentAPIRegistered).Time("event_time", time.Now()).Str("subject", ref.Prefix).
		Str("agent", id).Str("host", sum.Host).Str("remote", ip.String()).Msg("agent registered")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(agent.Registered{ID: id, APIKey: key})
}

func (h *agentAPI) heartbeat(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	sum, raw, err := readSummary(w, r)
	if err != nil {
		h.refuse(w, ref.Prefix, ip, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), agentTimeout)
	defer cancel()
	a, err := h.st.AgentHeartbeat(ctx, store.AgentBeat{Key: ref, Site: siteOf(sum), Host: sum.Host,
		Version: sum.Version, Summary: raw, Refusing: sum.Refusing, IP: ip})
	if err != nil {
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	beat := agent.Beat{ID: a.ID, Claimed: a.Claimed, HeartbeatSeconds: int(h.limits.Heartbeat / time.Second)}
	if a.Claimed {
		beat.Site = a.Site
	}
	writeJSON(w, beat)
}

func (h *agentAPI) claimCode(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	var req agent.ClaimCodeRequest
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req)
	hash, valid := agent.ClaimCodeHash(req.Code)
	if err != nil || !valid {
		h.refuse(w, ref.Prefix, ip, http.StatusBadRequest, "want {\"code\": \"XXXXX-XXXXX\"}")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), agentTimeout)
	defer cancel()
	expires, err := h.st.SetClaimCode(ctx, ref, hash, h.limits.ClaimCodeTTL)
	if err != nil {
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	writeJSON(w, agent.ClaimCodeReply{Expires: expires})
}

func (h *agentAPI) logs(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	entries, err := readLogs(w, r)
	if err != nil {
		h.refuse(w, ref.Prefix, ip, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), agentTimeout)
	defer cancel()
	n, err := h.st.StoreAgentLogs(ctx, ref, entries, h.limits.LogKeep)
	if err != nil {
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	h.log.Info().Str("code", logcode.AgentAPILogs).Time("event_time", time.Now()).Str("subject", ref.Prefix).
		Str("remote", ip.String()).Int("entries", n).Msg("agent logs stored")
	writeJSON(w, agent.LogsReply{Stored: n})
}

// bearer reads the agent's key from Authorization; it answers 401 to a
// request without one. Whether the key is known is the store's to say.
func (h *agentAPI) bearer(w http.ResponseWriter, r *http.Request, ip netip.Addr) (store.KeyRef, bool) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || len(raw) < 16 || len(raw) > 64 || strings.Trim(raw, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		h.refuse(w, "", ip, http.StatusUnauthorized, "the agent's key is required: Authorization: Bearer <key>")
		return store.KeyRef{}, false
	}
	return agentKeyRef(raw), true
}

// storeFailed answers what the store refused.
func (h *agentAPI) storeFailed(w http.ResponseWriter, prefix string, ip netip.Addr, err error) {
	var limit *store.LimitError
	switch {
	case errors.As(err, &limit):
		w.Header().Set("Retry-After", retryAfter(limit.Wait))
		h.refuse(w, prefix, ip, http.StatusTooManyRequests, "too many agents registered from "+limit.From()+"; retry later")
	case errors.Is(err, store.ErrAgentUnknown):
		w.Header().Set("WWW-Authenticate", "Bearer")
		h.refuse(w, prefix, ip, http.StatusUnauthorized, "unknown agent key: remove DIR/identity.json to register again")
	case errors.Is(err, store.ErrAgentClaimed):
		h.refuse(w, prefix, ip, http.StatusConflict, "this agent is already claimed")
	case errors.Is(err, store.ErrAgentNotClaimed):
		h.refuse(w, prefix, ip, http.StatusForbidden, "this agent is not claimed yet: its logs wait on its machine")
	case errors.Is(err, store.ErrRefused):
		h.refuse(w, prefix, ip, http.StatusBadRequest, err.Error())
	default:
		h.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("agent API: database unreachable")
		http.Error(w, "database unavailable, retry later", http.StatusServiceUnavailable)
	}
}

// refuse answers code with why, and logs it.
func (h *agentAPI) refuse(w http.ResponseWriter, prefix string, ip netip.Addr, code int, why string) {
	h.log.Warn().Str("code", logcode.AgentAPIRefused).Time("event_time", time.Now()).Str("subject", prefix).
		Str("remote", ip.String()).Int("status", code).Str("reason", why).Msg("agent API call refused")
	http.Error(w, why, code)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// newAgentKey returns a fresh agent key: "agt-" and 160 random bits in hex.
func newAgentKey() string {
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return "agt-" + hex.EncodeToString(raw[:])
}

// agentKeyRef is how an agent key is stored: its hash and a prefix.
func agentKeyRef(key string) store.KeyRef {
	return store.KeyRef{Hash: sha256.Sum256([]byte(key)), Prefix: key[:8]}
}
