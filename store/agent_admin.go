// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// AgentAdmin is what the operator's commands read of agents.
type AgentAdmin interface {
	// AllAgents lists every agent, claimed or not, by account and site.
	AllAgents(ctx context.Context) ([]AgentRow, error)
	// AgentLogs returns the last limit entries an agent posted, oldest
	// first; ErrNotFound when no agent has the id.
	AgentLogs(ctx context.Context, agentID string, limit int) ([]AgentLogRow, error)
}

var _ AgentAdmin = (*Postgres)(nil)

// AgentRow is one agent as the operator sees it.
type AgentRow struct {
	Agent
	Email     string    `json:"email"` // the account's; "" while unclaimed
	CreatedAt time.Time `json:"created_at"`
}

// AgentLogRow is one posted log entry.
type AgentLogRow struct {
	ReceivedAt time.Time       `json:"received_at"`
	EventTime  *time.Time      `json:"event_time"`
	Code       string          `json:"code"`
	Level      string          `json:"level"`
	Entry      json.RawMessage `json:"entry"`
}

// AllAgents lists every agent.
func (p *Postgres) AllAgents(ctx context.Context) ([]AgentRow, error) {
	rows, err := p.pool.Query(ctx, `SELECT g.agent_id, g.key_prefix, g.site, g.host, g.version, g.account_id IS NOT NULL,
			g.refusing, g.last_seen_at, coalesce(a.email, ''), g.created_at
		FROM agents g LEFT JOIN accounts a ON a.id = g.account_id ORDER BY a.email NULLS LAST, g.site, g.host, g.id`)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AgentRow, error) {
		var r AgentRow
		err := row.Scan(&r.ID, &r.KeyPrefix, &r.Site, &r.Host, &r.Version, &r.Claimed, &r.Refusing, &r.LastSeen, &r.Email, &r.CreatedAt)
		return r, err
	})
	return out, classify(err)
}

// AgentLogs returns an agent's last entries, oldest first.
func (p *Postgres) AgentLogs(ctx context.Context, agentID string, limit int) ([]AgentLogRow, error) {
	var id int64
	if err := p.pool.QueryRow(ctx, `SELECT id FROM agents WHERE agent_id = $1`, agentID).Scan(&id); err != nil {
		if err == pgx.ErrNoRows {
			return nil, ErrNotFound
		}
		return nil, classify(err)
	}
	rows, err := p.pool.Query(ctx, `SELECT received_at, event_time, code, level, entry FROM (
			SELECT * FROM agent_logs WHERE agent_id = $1 ORDER BY id DESC LIMIT $2) l ORDER BY id`, id, limit)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AgentLogRow])
	return out, classify(err)
}
