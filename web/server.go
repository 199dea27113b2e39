// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/store"
)

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Parse(pageHTML))

// page is what one page shows.
type page struct {
	Title, Message, Button, Class string
}

// Handler serves the links of the mails and /healthz.
type Handler struct {
	tokens  Tokens
	log     zerolog.Logger
	proxies []netip.Prefix
}

// New returns the HTTP handler of the web endpoints: the links of the
// mails, /healthz, and, when d gives them, the account page, the ACME
// endpoint and /metrics.
func New(d Deps) http.Handler {
	h := &Handler{tokens: d.Tokens, log: d.Log, proxies: d.Proxies}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.healthz)
	if d.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /{action}/{token}", h.show)
	mux.HandleFunc("POST /{action}/{token}", h.act)
	if d.ACME != nil {
		mux.Handle("POST /api/v1/acme/events", &acmeEvents{st: d.ACME, log: d.Log, limits: d.ACMELimits, proxies: d.Proxies})
	}
	if d.Accounts != nil {
		// Read-only: a GET changes nothing.
		mux.Handle("GET /account/{token}", accountPage{pages: d.Accounts, log: d.Log})
	}
	mountAgent(mux, d)
	return mux
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.tokens.Ping(ctx); err != nil {
		h.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("healthz: database unreachable")
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// asks holds, per action, the page a GET shows and the one a POST shows.
var asks = map[string]struct {
	title, message, button, class string
	doneTitle, doneMessage        string
}{
	"confirm": {"Confirm your KeyChest account",
		"Confirm the account %[1]s and its API key %[3]s...? KeyChest then starts watching the certificates of the key's %[4]s. Other keys claimed for this address wait for their own mail's link.",
		"Confirm account", "",
		"Account confirmed", "%[1]s is confirmed, with its API key %[3]s.... KeyChest now watches the certificates of the key's %[4]s."},
	"alerts_off": {"Stop alert mails?",
		"Stop the alert mails KeyChest sends %[1]s about certificate problems? The weekly digest and the account stay as they are.",
		"Stop alerts", "",
		"Alerts stopped", "KeyChest no longer sends alert mails to %[1]s. The weekly digest still comes."},
	"digest_off": {"Stop the weekly digest?",
		"Stop the weekly digest KeyChest sends %[1]s? Alert mails and the account stay as they are.",
		"Stop digest", "",
		"Digest stopped", "KeyChest no longer sends the weekly digest to %[1]s. Alert mails still come."},
	"block": {"Block this KeyChest account?",
		"If you did not ask KeyChest to watch certificates for %[1]s, block the account: its keys stop working and it takes no new ones.",
		"Block account", "danger",
		"Account blocked", "%[1]s is blocked. Its keys no longer work."},
	"approve": {"Approve this API key?",
		"Approve the API key %[3]s... for %[1]s? It holds %[4]s, pending until you approve: then KeyChest watches them and shows them in your mails and on your account page. If you did not add this key, revoke it instead, with the other link of the mail.",
		"Approve key", "",
		"Key approved", "The API key %[3]s... of %[1]s is approved: KeyChest now watches its %[4]s."},
	"agent_approve": {"Give this agent to your account?",
		"Give the agent %[5]s to %[1]s? It then takes audit jobs for the names you put behind its site, and dials them from inside its network, within its own allow-list. If you did not start this agent, close this page: nothing happens.",
		"Claim agent", "",
		"Agent claimed", "The agent %[5]s now belongs to %[1]s, which is confirmed. The command agents lists it."},
	"revoke": {"Revoke this API key?",
		"The API key %[3]s... of %[1]s stops working at once. Its domains stay listed.",
		"Revoke key", "danger",
		"Key revoked", "The API key %[3]s... of %[1]s no longer works."},
}

// action returns the link's action and its pages, or answers 404.
func action(w http.ResponseWriter, r *http.Request) (string, bool) {
	a := r.PathValue("action")
	if _, ok := asks[a]; !ok {
		http.NotFound(w, r)
		return "", false
	}
	return a, true
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	action, ok := action(w, r)
	if !ok {
		return
	}
	ask := asks[action]
	info, err := h.tokens.LookupToken(r.Context(), action, r.PathValue("token"))
	if err != nil {
		h.fail(w, err)
		return
	}
	render(w, http.StatusOK, page{Title: ask.title, Message: words4(ask.message, info), Button: ask.button, Class: ask.class})
}

func (h *Handler) act(w http.ResponseWriter, r *http.Request) {
	action, ok := action(w, r)
	if !ok {
		return
	}
	ask := asks[action]
	client := clientAddr(r, h.proxies)
	info, err := h.tokens.UseToken(r.Context(), action, r.PathValue("token"), client)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info().Str("code", logcode.LinkUsed).Time("event_time", time.Now()).Str("action", action).
		Str("subject", info.KeyPrefix).Str("remote", client.String()).Msg("link used")
	render(w, http.StatusOK, page{Title: ask.doneTitle, Message: words4(ask.doneMessage, info)})
}

// words4 fills a page's message: %[1]s the account's email, %[2]s its
// domains, %[3]s the key's prefix, %[4]s the key's domains, %[5]s the
// agent of an agent_approve link (capped and cleaned).
func words4(format string, info store.TokenInfo) string {
	return fmt.Sprintf(format, info.Email, words.Count(info.Domains, "domain"), info.KeyPrefix,
		words.Count(info.KeyDomains, "domain"), words.Clean(info.Agent, 200))
}

// fail shows why a link does not work.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrTokenUnknown):
		render(w, http.StatusNotFound, page{Title: "Unknown link", Message: "This link is not valid. Check that it was copied whole."})
	case errors.Is(err, store.ErrTokenUsed):
		render(w, http.StatusGone, page{Title: "Link already used", Message: "This link has already been used; each link works once."})
	case errors.Is(err, store.ErrAgentClaimed):
		render(w, http.StatusConflict, page{Title: "Agent already claimed", Message: "This agent was claimed meanwhile (by a claim code, or another address's mail), or this account is blocked. Nothing changed."})
	case errors.Is(err, store.ErrTokenExpired):
		render(w, http.StatusGone, page{Title: "Link expired", Message: "This link has expired. A newer mail carries a fresh one."})
	default:
		h.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("link page failed")
		render(w, http.StatusServiceUnavailable, page{Title: "Try again shortly", Message: "KeyChest cannot reach its database right now."})
	}
}

func render(w http.ResponseWriter, code int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer") // the token is in the URL
	w.WriteHeader(code)
	pageTemplate.Execute(w, p)
}
