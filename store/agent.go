// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// Agents keeps keychest-agents (migration 014): their registration,
// heartbeats, claim codes, claims and logs. An agent's key is its own
// (agents.key_hash), never a key of api_keys.
type Agents interface {
	// RegisterAgent stores a new agent, unless its client is past its
	// registrations per hour (a *LimitError).
	RegisterAgent(ctx context.Context, a NewAgent) error
	// AgentHeartbeat records a heartbeat with the summary it pushed.
	AgentHeartbeat(ctx context.Context, b AgentBeat) (Agent, error)
	// SetClaimCode stores the hash of the agent's new claim code, replacing
	// any older one; ErrAgentClaimed once the agent has an account.
	SetClaimCode(ctx context.Context, agentKey KeyRef, codeHash [32]byte, ttl time.Duration) (time.Time, error)
	// ClaimAgent gives the agent whose live code hashes to CodeHash to the
	// account of the owner's key; ErrClaimCode when no agent waits for it.
	ClaimAgent(ctx context.Context, c AgentClaim) (Agent, error)
	// AccountAgents lists the agents of the owner key's account.
	AccountAgents(ctx context.Context, owner KeyRef) ([]Agent, error)
	// StoreAgentLogs stores a claimed agent's log entries, and drops its
	// entries older than keep.
	StoreAgentLogs(ctx context.Context, agentKey KeyRef, logs []AgentLog, keep time.Duration) (int, error)
}

var _ Agents = (*Postgres)(nil)

// NewAgent is a registration.
type NewAgent struct {
	ID                  string // e-mail form, unique
	Key                 KeyRef
	Site, Host, Version string
	Summary             []byte // JSON, no secrets
	IP                  netip.Addr
	MaxPerIPHour        int // registrations per client (clientnet.Of) per hour; 0: no limit
}

// AgentBeat is a heartbeat.
type AgentBeat struct {
	Key                 KeyRef
	Site, Host, Version string
	Summary             []byte
	Refusing            bool
	IP                  netip.Addr
}

// AgentClaim asks to give an agent to the account of Owner, a key of a
// confirmed account.
type AgentClaim struct {
	Owner        KeyRef
	CodeHash     [32]byte
	IP           netip.Addr
	MaxPerIPHour int // claim attempts per client per hour; 0: no limit
}

// Agent is a stored agent.
type Agent struct {
	ID                  string
	KeyPrefix           string
	Site, Host, Version string
	Claimed             bool
	Refusing            bool
	LastSeen            time.Time
	// DiscoveryFailing is how many discovery sources the agent's last
	// pass could not read, as its summary says (AccountAgents only).
	DiscoveryFailing int
}

// AgentLog is one entry an agent posted.
type AgentLog struct {
	EventTime   time.Time // zero when the entry had none
	Code, Level string
	Entry       []byte // the JSON object as posted
}

// Errors of the agent API and commands.
var (
	ErrAgentUnknown error = ownError("unknown agent key")
	ErrAgentClaimed error = ownError("agent already claimed")
	ErrClaimCode    error = ownError("no agent waits for this claim code (wrong, used or expired)")
	ErrAgentOwner   error = ownError("only a claimed key of a confirmed account may claim or list agents")
	// ErrAgentNotClaimed: the agent may not post logs before a claim.
	ErrAgentNotClaimed error = ownError("agent not claimed yet")
)

const limitAgents = "agent"

var registerAgentSQL = `
WITH ` + takeTokenSQL(limitAgents, 9, 10) + `, ins AS (
    INSERT INTO agents (agent_id, key_hash, key_prefix, site, host, version, summary, created_ip, last_ip)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8 FROM allowed WHERE ok
    RETURNING id
), logged AS (
    INSERT INTO audit (remote_ip, action, key_prefix, detail)
    SELECT $8, 'agent.register', $3, jsonb_build_object('agent', $1::text, 'host', $5::text) FROM ins
)
SELECT ok, tokens FROM allowed`

// RegisterAgent stores a new agent, unless its client is past its limit.
func (p *Postgres) RegisterAgent(ctx context.Context, a NewAgent) error {
	client, perHour := bucketArgs(a.IP, a.MaxPerIPHour)
	var ok bool
	var tokens float64
	err := p.pool.QueryRow(ctx, registerAgentSQL, a.ID, a.Key.Hash[:], a.Key.Prefix, a.Site, a.Host, a.Version,
		a.Summary, inet(a.IP), client, perHour).Scan(&ok, &tokens)
	if err != nil {
		return classify(err)
	}
	return limitError(ok, tokens, a.IP, perHour)
}

// AgentHeartbeat records a heartbeat and the summary it pushed.
func (p *Postgres) AgentHeartbeat(ctx context.Context, b AgentBeat) (Agent, error) {
	a := Agent{KeyPrefix: b.Key.Prefix}
	err := p.pool.QueryRow(ctx, `UPDATE agents SET site = $2, host = $3, version = $4, summary = $5,
			refusing = $6, last_seen_at = now(), last_ip = $7
		WHERE key_hash = $1
		RETURNING agent_id, site, host, version, account_id IS NOT NULL, refusing, last_seen_at`,
		b.Key.Hash[:], b.Site, b.Host, b.Version, b.Summary, b.Refusing, inet(b.IP)).
		Scan(&a.ID, &a.Site, &a.Host, &a.Version, &a.Claimed, &a.Refusing, &a.LastSeen)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrAgentUnknown
	}
	return a, classify(err)
}

// SetClaimCode stores the hash of a new claim code of an unclaimed agent.
func (p *Postgres) SetClaimCode(ctx context.Context, agentKey KeyRef, codeHash [32]byte, ttl time.Duration) (time.Time, error) {
	var expires time.Time
	err := p.pool.QueryRow(ctx, `INSERT INTO agent_claim_codes (agent_id, code_hash, expires_at)
		SELECT id, $2, now() + $3::interval FROM agents WHERE key_hash = $1 AND account_id IS NULL
		ON CONFLICT (agent_id) DO UPDATE SET code_hash = excluded.code_hash, created_at = now(),
			expires_at = excluded.expires_at
		RETURNING expires_at`, agentKey.Hash[:], codeHash[:], ttl).Scan(&expires)
	if errors.Is(err, pgx.ErrNoRows) {
		var n int
		if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM agents WHERE key_hash = $1`, agentKey.Hash[:]).Scan(&n); err != nil {
			return expires, classify(err)
		}
		if n == 0 {
			return expires, ErrAgentUnknown
		}
		return expires, ErrAgentClaimed
	}
	return expires, classify(err)
}

// StoreAgentLogs stores a claimed agent's entries and drops its entries
// older than keep, in one transaction.
func (p *Postgres) StoreAgentLogs(ctx context.Context, agentKey KeyRef, logs []AgentLog, keep time.Duration) (int, error) {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var id int64
		var claimed bool
		err := tx.QueryRow(ctx, `SELECT id, account_id IS NOT NULL FROM agents WHERE key_hash = $1`,
			agentKey.Hash[:]).Scan(&id, &claimed)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrAgentUnknown
		case err != nil:
			return err
		case !claimed:
			return ErrAgentNotClaimed
		}
		rows := make([][]any, len(logs))
		for i, l := range logs {
			var at *time.Time
			if !l.EventTime.IsZero() {
				at = &l.EventTime
			}
			rows[i] = []any{id, at, l.Code, l.Level, l.Entry}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"agent_logs"},
			[]string{"agent_id", "event_time", "code", "level", "entry"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM agent_logs WHERE agent_id = $1 AND received_at < now() - $2::interval`, id, keep)
		return err
	})
	if err != nil {
		return 0, classify(err)
	}
	return len(logs), nil
}

// claimedAgent is an agent that an account claimed.
type claimedAgent struct {
	id, account int64
	site        string
}

// claimedAgentOf reads the agent whose key is key, in tx: ErrAgentUnknown
// when there is none, ErrAgentNotClaimed while no account claimed it.
func claimedAgentOf(ctx context.Context, tx pgx.Tx, key KeyRef) (claimedAgent, error) {
	var ag claimedAgent
	var account *int64
	err := tx.QueryRow(ctx, `SELECT id, account_id, site FROM agents WHERE key_hash = $1`, key.Hash[:]).
		Scan(&ag.id, &account, &ag.site)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ag, ErrAgentUnknown
	case err != nil:
		return ag, err
	case account == nil:
		return ag, ErrAgentNotClaimed
	}
	ag.account = *account
	return ag, nil
}
