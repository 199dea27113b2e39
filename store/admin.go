// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// Account is one account as the operator sees it.
type Account struct {
	Email       string     `json:"email"`
	CreatedAt   time.Time  `json:"created_at"`
	ConfirmedAt *time.Time `json:"confirmed_at"`
	BlockedAt   *time.Time `json:"blocked_at"`
	Keys        int        `json:"keys"`
	Domains     int        `json:"domains"`
}

// Key is one API key as the operator sees it (never the key itself).
type Key struct {
	Prefix    string     `json:"prefix"`
	Origin    string     `json:"origin"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedIP string     `json:"created_ip"`
	ClaimedAt *time.Time `json:"claimed_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Domains   int        `json:"domains"`
	PendingAt *time.Time `json:"pending_at"` // waiting for the owner's approval since
}

// QueuedMail is one mail of the outbox as the operator sees it (never its
// body, which links to live tokens while the mail is pending).
type QueuedMail struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	To        string    `json:"to"`
	Status    string    `json:"status"` // "pending", "sent" or "failed"
	Attempts  int       `json:"attempts"`
	CreatedAt time.Time `json:"created_at"`
	LastError string    `json:"last_error"` // why the last attempt failed; for a failed mail, why it was given up
}

// Accounts lists every account, oldest first.
func (p *Postgres) Accounts(ctx context.Context) ([]Account, error) {
	rows, err := p.pool.Query(ctx, `SELECT a.email, a.created_at, a.confirmed_at, a.blocked_at,
			(SELECT count(*) FROM api_keys k WHERE k.account_id = a.id),
			(SELECT coalesce(sum(k.domain_count), 0) FROM api_keys k WHERE k.account_id = a.id)
		FROM accounts a ORDER BY a.created_at, a.id`)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Account, error) {
		var a Account
		err := row.Scan(&a.Email, &a.CreatedAt, &a.ConfirmedAt, &a.BlockedAt, &a.Keys, &a.Domains)
		return a, err
	})
	return out, classify(err)
}

// rowQuerier is a pool or a transaction.
type rowQuerier interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}

// accountID finds an account by its (normalised) email.
func accountID(ctx context.Context, q rowQuerier, email string) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT id FROM accounts WHERE email = $1`, email).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNotFound
	}
	return id, err
}

// AccountDomains lists the domains of every key of an account.
func (p *Postgres) AccountDomains(ctx context.Context, email string) ([]Domain, error) {
	id, err := accountID(ctx, p.pool, email)
	if err != nil {
		return nil, classify(err)
	}
	return p.domains(ctx, `WHERE k.account_id = $1`, id).collect()
}

// AccountKeys lists the keys of an account.
func (p *Postgres) AccountKeys(ctx context.Context, email string) ([]Key, error) {
	id, err := accountID(ctx, p.pool, email)
	if err != nil {
		return nil, classify(err)
	}
	return p.keys(ctx, `WHERE account_id = $1`, id)
}

func (p *Postgres) keys(ctx context.Context, where string, args ...any) ([]Key, error) {
	rows, err := p.pool.Query(ctx, `SELECT key_prefix, origin, created_at, coalesce(host(created_ip), ''),
		claimed_at, revoked_at, domain_count, pending_at FROM api_keys `+where+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) {
		var k Key
		err := row.Scan(&k.Prefix, &k.Origin, &k.CreatedAt, &k.CreatedIP, &k.ClaimedAt, &k.RevokedAt, &k.Domains, &k.PendingAt)
		return k, err
	})
	return out, classify(err)
}

// SetAccount confirms or blocks an account, as its mail's links do; the
// operator's confirm also approves every key that waits on the account
// (a confirm link approves only the key its mail is about).
func (p *Postgres) SetAccount(ctx context.Context, email, action string) error {
	return classify(pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		id, err := accountID(ctx, tx, email)
		if err != nil {
			return err
		}
		return applyAction(ctx, tx, action, id, nil, netip.Addr{}, "cli")
	}))
}

// RevokeKey revokes the one key whose prefix starts with prefix.
func (p *Postgres) RevokeKey(ctx context.Context, prefix string) (Key, error) {
	return p.keyAction(ctx, prefix, "revoke")
}

// ApproveKey approves the one key whose prefix starts with prefix: a key
// claimed onto a confirmed account that waits for the owner's approval.
func (p *Postgres) ApproveKey(ctx context.Context, prefix string) (Key, error) {
	return p.keyAction(ctx, prefix, "approve")
}

// keyAction applies action (revoke, approve) to the one key whose prefix
// starts with prefix, and reads the key back.
func (p *Postgres) keyAction(ctx context.Context, prefix, action string) (Key, error) {
	var keyID int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var accountID *int64
		rows, err := tx.Query(ctx, `SELECT id, account_id FROM api_keys WHERE key_prefix LIKE $1 || '%' FOR UPDATE`, prefix)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
			if err := rows.Scan(&keyID, &accountID); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		switch {
		case n == 0:
			return ErrNotFound
		case n > 1:
			return ErrAmbiguousPrefix
		}
		var account int64
		if accountID != nil {
			account = *accountID
		}
		return applyAction(ctx, tx, action, account, &keyID, netip.Addr{}, "cli")
	})
	if err != nil {
		return Key{}, classify(err)
	}
	keys, err := p.keys(ctx, `WHERE id = $1`, keyID)
	if err != nil || len(keys) != 1 {
		return Key{}, err
	}
	return keys[0], nil
}

// Mails lists the outbox, oldest first; only the mails failed for good if
// failedOnly.
func (p *Postgres) Mails(ctx context.Context, failedOnly bool) ([]QueuedMail, error) {
	rows, err := p.pool.Query(ctx, `SELECT id, kind, to_email,
			CASE WHEN sent_at IS NOT NULL THEN 'sent' WHEN failed_at IS NOT NULL THEN 'failed' ELSE 'pending' END,
			attempts, created_at, coalesce(last_error, '')
		FROM outbox WHERE failed_at IS NOT NULL OR NOT $1 ORDER BY created_at, id`, failedOnly)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueuedMail, error) {
		var m QueuedMail
		err := row.Scan(&m.ID, &m.Kind, &m.To, &m.Status, &m.Attempts, &m.CreatedAt, &m.LastError)
		return m, err
	})
	return out, classify(err)
}
