// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// AgentEmailStore is what claim-email needs of the storage.
type AgentEmailStore interface {
	ClaimAgentByEmail(ctx context.Context, c store.AgentEmailClaim) (bool, error)
}

// claimEmail answers the agent's request (run --email E) to be claimed
// for E: the service mails E a link that gives the agent to E's account.
// Nothing is claimed before the owner presses that link's button.
func (h *agentAPI) claimEmail(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	var req agent.ClaimEmailRequest
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req)
	email, perr := names.ParseEmail(req.Email)
	if err != nil || perr != nil {
		h.refuse(w, ref.Prefix, ip, http.StatusBadRequest, "want {\"email\": \"an e-mail address\"}")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), agentTimeout)
	defer cancel()
	queued, err := h.st.ClaimAgentByEmail(ctx, store.AgentEmailClaim{Agent: ref, Email: email, IP: ip,
		Token: names.NewToken(), MaxPerIPHour: h.limits.ClaimsPerIPHour, MaxMailsPerDay: h.limits.MailsPerDay})
	var limit *store.LimitError
	switch {
	case errors.As(err, &limit):
		w.Header().Set("Retry-After", retryAfter(limit.Wait))
		h.refuse(w, ref.Prefix, ip, http.StatusTooManyRequests, "too many claims from "+limit.From()+"; retry later")
		return
	case errors.Is(err, store.ErrMailLimit):
		w.Header().Set("Retry-After", strconv.Itoa(24*3600))
		h.refuse(w, ref.Prefix, ip, http.StatusTooManyRequests, "too many mails sent to this address today; retry in 24h")
		return
	case errors.Is(err, store.ErrAccountBlocked):
		h.refuse(w, ref.Prefix, ip, http.StatusForbidden, "this account is blocked")
		return
	case err != nil:
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	if queued {
		h.log.Info().Str("code", logcode.AgentAPIClaimMail).Time("event_time", time.Now()).Str("subject", ref.Prefix).
			Str("remote", ip.String()).Msg("agent claim mail queued")
	}
	writeJSON(w, agent.ClaimEmailReply{Queued: queued})
}
