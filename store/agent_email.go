// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// AgentEmailClaim is an agent's own request (`keychest-agent run --email
// E`) to be given to the account of Email.
type AgentEmailClaim struct {
	Agent KeyRef // the agent's own key
	Email string // normalised
	IP    netip.Addr
	// Token is a fresh random token for the mail's approve link; only its
	// hash is stored.
	Token string
	// Limits, as for a key's claim: claims per client per hour, mails to
	// one address per day. 0: no limit.
	MaxPerIPHour   int
	MaxMailsPerDay int
}

// AgentMail is what an agent_claim mail shows of the agent: its summary
// as it pushed it (the composer caps and cleans each text).
type AgentMail struct {
	ID        string   `json:"id"`
	Host      string   `json:"host"`
	Addresses []string `json:"addresses"`
	Version   string   `json:"version"`
	OS        string   `json:"os"`
	Arch      string   `json:"arch"`
	Site      string   `json:"site"`
	Allow     []string `json:"allow"`
}

// ClaimAgentByEmail queues, for an unclaimed agent, the mail to Email
// whose approve link gives the agent to that account. It returns false
// (and queues nothing) when a mail for this agent and address still has a
// live, unused link. ErrAgentUnknown, ErrAgentClaimed, ErrAccountBlocked,
// ErrMailLimit or a *LimitError refuse the request.
func (p *Postgres) ClaimAgentByEmail(ctx context.Context, c AgentEmailClaim) (bool, error) {
	queued := false
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var err error
		queued, err = claimAgentByEmailTx(ctx, tx, c)
		return err
	})
	return queued, classify(err)
}

func claimAgentByEmailTx(ctx context.Context, tx pgx.Tx, c AgentEmailClaim) (bool, error) {
	var agentID int64
	var claimed bool
	var summary []byte
	var facts AgentMail
	err := tx.QueryRow(ctx, `SELECT id, agent_id, site, host, version, account_id IS NOT NULL, summary
		FROM agents WHERE key_hash = $1 FOR UPDATE`, c.Agent.Hash[:]).
		Scan(&agentID, &facts.ID, &facts.Site, &facts.Host, &facts.Version, &claimed, &summary)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, ErrAgentUnknown
	case err != nil:
		return false, err
	case claimed:
		return false, ErrAgentClaimed
	}
	var waiting bool
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tokens t JOIN accounts a ON a.id = t.account_id
		WHERE t.agent_id = $1 AND a.email = $2 AND t.action = 'agent_approve' AND t.used_at IS NULL AND t.expires_at > now())`,
		agentID, c.Email).Scan(&waiting)
	if err != nil || waiting {
		return false, err
	}
	acct, err := ensureAccount(ctx, tx, Claim{Email: c.Email, IP: c.IP, MaxPerIPHour: c.MaxPerIPHour})
	if err != nil {
		return false, err
	}
	var mails int
	err = tx.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE to_email = $1
		AND kind IN ('confirm', 'new_key', 'agent_claim') AND created_at > now() - interval '1 day'`, c.Email).Scan(&mails)
	if err != nil {
		return false, err
	}
	if c.MaxMailsPerDay > 0 && mails >= c.MaxMailsPerDay {
		return false, ErrMailLimit
	}
	fillAgentMail(&facts, summary)
	return true, queueAgentMail(ctx, tx, c, acct, agentID, facts)
}

// fillAgentMail takes the addresses, OS, architecture and allow-list from
// the agent's pushed summary; a summary that does not parse adds nothing.
func fillAgentMail(f *AgentMail, summary []byte) {
	var s struct {
		Addresses []string `json:"addresses"`
		OS        string   `json:"os"`
		Arch      string   `json:"arch"`
		Allow     []string `json:"allow"`
	}
	if json.Unmarshal(summary, &s) == nil {
		f.Addresses, f.OS, f.Arch, f.Allow = s.Addresses, s.OS, s.Arch, s.Allow
	}
}

// queueAgentMail stores the approve token's hash, the mail with its facts
// and the audit entry.
func queueAgentMail(ctx context.Context, tx pgx.Tx, c AgentEmailClaim, a account, agentID int64, f AgentMail) error {
	if c.Token == "" {
		return errors.New("agent claim mail without a token")
	}
	now := time.Now().UTC()
	facts := ClaimMail{KeyPrefix: c.Agent.Prefix, IP: c.IP, At: now, Expires: now.Add(TokenLifetime), Agent: &f}
	hash := HashToken(c.Token)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO tokens (hash, action, account_id, agent_id, expires_at) VALUES ($1, 'agent_approve', $2, $3, $4)`,
		hash[:], a.id, agentID, facts.Expires)
	b.Queue(`INSERT INTO outbox (kind, to_email, subject, body, link_tokens, claim) VALUES ('agent_claim', $1, '', '', $2, $3)`,
		c.Email, map[string]string{"agent_approve": c.Token}, facts)
	b.Queue(`INSERT INTO audit (remote_ip, action, key_prefix, detail)
		VALUES ($1, 'agent.claim_mail', $2, jsonb_build_object('email', $3::text, 'agent', $4::text, 'new_account', $5::bool))`,
		inet(c.IP), c.Agent.Prefix, c.Email, f.ID, a.created)
	return tx.SendBatch(ctx, b).Close()
}

// giveAgentSQL confirms account $1 (if it was not yet: the link came to
// its address) and gives it agent $2, unless the agent has an account.
// Keys waiting for approval stay waiting: each has its own mail.
const giveAgentSQL = `WITH confirmed AS (
    UPDATE accounts SET confirmed_at = coalesce(confirmed_at, now()) WHERE id = $1 AND blocked_at IS NULL
)
UPDATE agents SET account_id = $1, claimed_at = now(), claimed_ip = $3
WHERE id = $2 AND account_id IS NULL AND NOT EXISTS (SELECT 1 FROM accounts WHERE id = $1 AND blocked_at IS NOT NULL)`
