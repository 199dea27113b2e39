// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// RemoveDomain deletes a domain of a key and uncounts it; it reports false
// when the key had no such domain.
func (p *Postgres) RemoveDomain(ctx context.Context, d DomainRef) (bool, error) {
	var removed bool
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var keyID int64
		var revoked bool
		err := tx.QueryRow(ctx, `SELECT id, revoked_at IS NOT NULL FROM api_keys WHERE key_hash = $1 FOR UPDATE`,
			d.Key.Hash[:]).Scan(&keyID, &revoked)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return ErrUnknownKey
		case err != nil:
			return err
		case revoked:
			return ErrKeyRevoked
		}
		var addedAt time.Time
		var addedIP *netip.Addr
		err = tx.QueryRow(ctx, `DELETE FROM domains WHERE api_key_id = $1 AND name = $2 AND port = $3
			RETURNING created_at, created_ip`, keyID, d.Name, d.Port).Scan(&addedAt, &addedIP)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		removed = true
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET domain_count = domain_count - 1 WHERE id = $1`, keyID); err != nil {
			return err
		}
		// The add has no audit row of its own (its domains row was it).
		_, err = tx.Exec(ctx, `INSERT INTO audit (remote_ip, action, key_prefix, detail)
			VALUES ($1, 'domain.remove', $2, jsonb_build_object('domain', $3::text, 'port', $4::int,
				'added_at', $5::timestamptz, 'added_ip', host($6::inet)))`,
			inet(d.IP), d.Key.Prefix, d.Name, d.Port, addedAt, addedIP)
		return err
	})
	return removed, classify(err)
}

// KeyStatus reports a key's state. A key waiting for approval reads as
// unconfirmed (see KeyStatus.Confirmed).
func (p *Postgres) KeyStatus(ctx context.Context, k KeyRef) (KeyStatus, error) {
	s := KeyStatus{Prefix: k.Prefix}
	var email *string
	err := p.pool.QueryRow(ctx, `SELECT a.email, coalesce(a.confirmed_at IS NOT NULL, false) AND `+keyApproved+`,
			coalesce(a.blocked_at IS NOT NULL, false), k.revoked_at IS NOT NULL,
			`+keyHeldSQL+`, k.created_at,
			(SELECT count(*) FROM domains d JOIN mon_targets t ON t.public AND t.name = d.name AND t.port = d.port
			 WHERE d.api_key_id = k.id AND t.active AND `+targetInTrouble+`
			   AND coalesce(`+activeDomain+`, false))
			+ (SELECT count(*) FROM agent_targets s JOIN mon_targets t ON t.site_target = s.id
			   WHERE s.api_key_id = k.id AND t.active AND `+targetInTrouble+` AND coalesce(`+activeDomain+`, false))
		FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1`,
		k.Hash[:]).Scan(&email, &s.Confirmed, &s.Blocked, &s.Revoked, &s.Domains, &s.CreatedAt, &s.Problems)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrUnknownKey
	}
	if email != nil {
		s.Email = *email
	}
	return s, classify(err)
}

// KeyDomains lists a key's domains, oldest first, then its targets
// behind sites, oldest first: those only while the key is approved (a key
// waiting for approval adds none; the account's names behind its sites
// are no stranger's to read).
func (p *Postgres) KeyDomains(ctx context.Context, k KeyRef) ([]Domain, error) {
	if _, err := p.KeyStatus(ctx, k); err != nil {
		return nil, err
	}
	out, err := p.domains(ctx, `WHERE k.key_hash = $1`, k.Hash[:]).collect()
	if err != nil {
		return nil, err
	}
	rows, err := p.pool.Query(ctx, `SELECT s.name, s.port, false, k.key_prefix, coalesce(`+activeDomain+`, false), s.created_at, s.site
		FROM agent_targets s JOIN api_keys k ON k.id = s.api_key_id LEFT JOIN accounts a ON a.id = k.account_id
		WHERE k.key_hash = $1 AND `+keyApproved+` AND `+liveSiteTarget("s")+` ORDER BY s.created_at, s.id`, k.Hash[:])
	if err != nil {
		return nil, classify(err)
	}
	sites, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Domain])
	return append(out, sites...), classify(err)
}

// domainQuery is a pending query for domains.
type domainQuery struct {
	rows pgx.Rows
	err  error
}

// domains selects domains with their key's prefix and whether they are
// active, filtered by where (which may refer to k for the key and a for
// the account).
func (p *Postgres) domains(ctx context.Context, where string, args ...any) domainQuery {
	rows, err := p.pool.Query(ctx, `SELECT d.name, d.port, d.wildcard, k.key_prefix,
			coalesce(`+activeDomain+`, false),
			d.created_at
		FROM domains d JOIN api_keys k ON k.id = d.api_key_id LEFT JOIN accounts a ON a.id = k.account_id
		`+where+` ORDER BY d.created_at, d.id`, args...)
	return domainQuery{rows: rows, err: err}
}

func (q domainQuery) collect() ([]Domain, error) {
	if q.err != nil {
		return nil, classify(q.err)
	}
	out, err := pgx.CollectRows(q.rows, func(row pgx.CollectableRow) (Domain, error) {
		var d Domain
		err := row.Scan(&d.Name, &d.Port, &d.Wildcard, &d.KeyPrefix, &d.Active, &d.CreatedAt)
		return d, err
	})
	return out, classify(err)
}
