// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

const limitAgentClaims = "agent_claim"

// ownerAccount returns the account of an owner key: a key claimed by a
// confirmed, unblocked account, not revoked and not waiting for approval.
func ownerAccount(ctx context.Context, q pgx.Tx, owner KeyRef) (int64, error) {
	var account *int64
	var revoked, confirmed, blocked, approved bool
	err := q.QueryRow(ctx, `SELECT a.id, k.revoked_at IS NOT NULL, coalesce(a.confirmed_at IS NOT NULL, false),
			coalesce(a.blocked_at IS NOT NULL, false), `+keyApproved+`
		FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1`,
		owner.Hash[:]).Scan(&account, &revoked, &confirmed, &blocked, &approved)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, ErrUnknownKey
	case err != nil:
		return 0, err
	case revoked:
		return 0, ErrKeyRevoked
	case blocked:
		return 0, ErrAccountBlocked
	case account == nil || !confirmed || !approved:
		return 0, ErrAgentOwner
	}
	return *account, nil
}

// claimTakeSQL takes a token of the client's agent_claim bucket.
var claimTakeSQL = `WITH ` + takeTokenSQL(limitAgentClaims, 1, 2) + ` SELECT ok, tokens FROM allowed`

// ClaimAgent gives the agent whose live claim code hashes to c.CodeHash
// to the account of c.Owner, and uses the code up. Every attempt by an
// owner key counts against the client's limit, and a wrong code's attempt
// stays counted: the take commits whatever the code.
func (p *Postgres) ClaimAgent(ctx context.Context, c AgentClaim) (Agent, error) {
	var a Agent
	var outcome error
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		account, err := ownerAccount(ctx, tx, c.Owner)
		if err != nil {
			return err
		}
		client, perHour := bucketArgs(c.IP, c.MaxPerIPHour)
		var ok bool
		var tokens float64
		if err := tx.QueryRow(ctx, claimTakeSQL, client, perHour).Scan(&ok, &tokens); err != nil {
			return err
		}
		if outcome = limitError(ok, tokens, c.IP, perHour); outcome != nil {
			return nil
		}
		err = tx.QueryRow(ctx, `WITH used AS (
				DELETE FROM agent_claim_codes WHERE code_hash = $1 RETURNING agent_id, expires_at > now() AS live
			)
			UPDATE agents g SET account_id = $2, claimed_at = now(), claimed_ip = $3
			FROM used WHERE g.id = used.agent_id AND used.live AND g.account_id IS NULL
			RETURNING g.agent_id, g.key_prefix, g.site, g.host, g.version, g.refusing, g.last_seen_at`,
			c.CodeHash[:], account, inet(c.IP)).
			Scan(&a.ID, &a.KeyPrefix, &a.Site, &a.Host, &a.Version, &a.Refusing, &a.LastSeen)
		if errors.Is(err, pgx.ErrNoRows) {
			outcome = ErrClaimCode
			return nil
		}
		if err != nil {
			return err
		}
		a.Claimed = true
		_, err = tx.Exec(ctx, `INSERT INTO audit (remote_ip, action, key_prefix, detail)
			VALUES ($1, 'agent.claim', $2, jsonb_build_object('agent', $3::text, 'account', $4::bigint))`,
			inet(c.IP), c.Owner.Prefix, a.ID, account)
		return err
	})
	if err != nil {
		return a, classify(err)
	}
	return a, outcome
}

// AccountAgents lists the agents of the owner key's account, by site and
// host.
func (p *Postgres) AccountAgents(ctx context.Context, owner KeyRef) ([]Agent, error) {
	var out []Agent
	err := pgx.BeginTxFunc(ctx, p.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		account, err := ownerAccount(ctx, tx, owner)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT agent_id, key_prefix, site, host, version, refusing, last_seen_at, `+discoveryFailingSQL+`
			FROM agents WHERE account_id = $1 ORDER BY site, host, id`, account)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Agent, error) {
			a := Agent{Claimed: true}
			err := row.Scan(&a.ID, &a.KeyPrefix, &a.Site, &a.Host, &a.Version, &a.Refusing, &a.LastSeen, &a.DiscoveryFailing)
			return a, err
		})
		return err
	})
	return out, classify(err)
}
