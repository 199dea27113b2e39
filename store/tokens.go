// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// TokenInfo is what a link token stands for.
type TokenInfo struct {
	Action     string // "confirm", "block", "approve" or "revoke" (or an unsubscribe)
	Email      string // the account's
	KeyPrefix  string // the key the claim was about
	Domains    int    // domains the account holds
	KeyDomains int    // domains the claim's key holds
	// Agent names the agent an agent_approve link gives away: its host
	// and id, as the agent pushed them (not yet cleaned for a page).
	Agent     string
	ExpiresAt time.Time
}

const tokenSQL = `SELECT t.id, t.action, a.id, a.email, coalesce(k.key_prefix, ''), t.api_key_id,
		(SELECT count(*) FROM domains d JOIN api_keys dk ON dk.id = d.api_key_id WHERE dk.account_id = a.id),
		coalesce(k.domain_count, 0), t.agent_id, coalesce(g.host || ' (' || g.agent_id || ')', ''),
		t.expires_at, t.used_at IS NOT NULL
	FROM tokens t JOIN accounts a ON a.id = t.account_id LEFT JOIN api_keys k ON k.id = t.api_key_id
		LEFT JOIN agents g ON g.id = t.agent_id
	WHERE t.hash = $1`

// tokenRow is a token as read for checking and use.
type tokenRow struct {
	id, accountID int64
	keyID         *int64
	agentID       *int64
	used          bool
	info          TokenInfo
}

func readToken(ctx context.Context, q pgx.Tx, action, raw string, lock bool) (tokenRow, error) {
	var t tokenRow
	hash := HashToken(raw)
	sql := tokenSQL
	if lock {
		sql += ` FOR UPDATE OF t`
	}
	err := q.QueryRow(ctx, sql, hash[:]).Scan(&t.id, &t.info.Action, &t.accountID, &t.info.Email,
		&t.info.KeyPrefix, &t.keyID, &t.info.Domains, &t.info.KeyDomains, &t.agentID, &t.info.Agent, &t.info.ExpiresAt, &t.used)
	switch {
	case errors.Is(err, pgx.ErrNoRows), err == nil && t.info.Action != action:
		return tokenRow{}, ErrTokenUnknown
	case err != nil:
		return t, err
	case t.used:
		return t, ErrTokenUsed
	case time.Now().After(t.info.ExpiresAt):
		return t, ErrTokenExpired
	}
	return t, nil
}

// LookupToken reports what a link does, without using it.
func (p *Postgres) LookupToken(ctx context.Context, action, raw string) (TokenInfo, error) {
	var info TokenInfo
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		t, err := readToken(ctx, tx, action, raw, false)
		info = t.info
		return err
	})
	return info, classify(err)
}

// UseToken marks a link used and applies it: confirm its account and
// approve its key, block its account, or approve or revoke its key.
func (p *Postgres) UseToken(ctx context.Context, action, raw string, ip netip.Addr) (TokenInfo, error) {
	var info TokenInfo
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		t, err := readToken(ctx, tx, action, raw, true)
		info = t.info
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tokens SET used_at = now() WHERE id = $1`, t.id); err != nil {
			return err
		}
		if t.info.Action == "agent_approve" {
			return giveAgent(ctx, tx, t.accountID, t.agentID, ip, "link")
		}
		return applyAction(ctx, tx, t.info.Action, t.accountID, t.keyID, ip, "link")
	})
	return info, classify(err)
}

// confirmSQL confirms account $1 and approves its key $2. With $2 null
// (the operator's confirm) it approves the keys that waited for the
// account's confirmation, only while the account is not confirmed yet:
// on a confirmed account, a waiting key was claimed onto it afterwards,
// by anyone who knew the address, and each needs its own approval (its
// mail's link, or the operator's approve --key-prefix). The subquery sees
// the account as it was before this statement (one snapshot).
const confirmSQL = `WITH confirmed AS (
    UPDATE accounts SET confirmed_at = coalesce(confirmed_at, now()) WHERE id = $1
)
UPDATE api_keys SET pending_at = NULL, approved_at = now()
WHERE account_id = $1 AND pending_at IS NOT NULL AND revoked_at IS NULL
  AND (id = $2 OR $2::bigint IS NULL AND (SELECT confirmed_at FROM accounts WHERE id = $1) IS NULL)`

// giveAgent applies an agent_approve link: the account (confirmed by it
// if it was not) gets the agent, and it is audited. ErrAgentClaimed, with
// nothing changed (the link stays unused), when the agent was claimed
// meanwhile (by code, or another address's mail) or the account is blocked.
// by is who gave it: "link" (the mail's button) or "cli" (the operator).
func giveAgent(ctx context.Context, tx pgx.Tx, accountID int64, agentID *int64, ip netip.Addr, by string) error {
	if agentID == nil {
		return errors.New("agent_approve token without an agent")
	}
	tag, err := tx.Exec(ctx, giveAgentSQL, accountID, *agentID, inet(ip))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrAgentClaimed
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit (remote_ip, action, key_prefix, detail)
		SELECT $1, 'agent.claim', g.key_prefix, jsonb_build_object('agent', g.agent_id, 'account', $2::bigint,
			'claimed', g.account_id = $2, 'by', $4::text)
		FROM agents g WHERE g.id = $3`, inet(ip), accountID, *agentID, by)
	return err
}

// applyAction confirms or blocks an account, or approves or revokes a key,
// and audits it. Approving a key that waits no more (approved before, or
// never pending) or is revoked changes nothing but is audited all the
// same: a revoked key's names never come to light.
func applyAction(ctx context.Context, tx pgx.Tx, action string, accountID int64, keyID *int64, ip netip.Addr, by string) error {
	var sql, audited string
	args := []any{accountID}
	switch action {
	case "confirm":
		sql, audited = confirmSQL, "account.confirm"
		args = append(args, keyID)
	case "block":
		sql, audited = `UPDATE accounts SET blocked_at = coalesce(blocked_at, now()) WHERE id = $1`, "account.block"
	case "revoke":
		sql, audited = `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1`, "key.revoke"
		args = []any{keyID}
	case "approve":
		sql, audited = `UPDATE api_keys SET pending_at = NULL, approved_at = now()
			WHERE id = $1 AND pending_at IS NOT NULL AND revoked_at IS NULL`, "key.approve"
		args = []any{keyID}
	case "alerts_off":
		sql, audited = `UPDATE accounts SET alerts_off_at = coalesce(alerts_off_at, now()) WHERE id = $1`, "account.alerts_off"
	case "digest_off":
		sql, audited = `UPDATE accounts SET digest_off_at = coalesce(digest_off_at, now()) WHERE id = $1`, "account.digest_off"
	default:
		return errors.New("unknown token action " + action)
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO audit (remote_ip, action, key_prefix, detail)
		VALUES ($1, $2, (SELECT key_prefix FROM api_keys WHERE id = $4),
			jsonb_build_object('email', (SELECT email FROM accounts WHERE id = $3), 'by', $5::text))`,
		inet(ip), audited, accountID, keyID, by)
	return err
}
