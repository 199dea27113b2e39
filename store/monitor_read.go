// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Watch is what the line commands and the operator need of the monitor's
// results.
type Watch interface {
	// CertStatus reports the certificate state of one domain of a key.
	CertStatus(ctx context.Context, k KeyRef, name string, port int) (CertStatus, error)
	// RequestCheck asks for a probe of one domain of a key: now, but no
	// sooner than gap after its last probe.
	RequestCheck(ctx context.Context, k KeyRef, name string, port int, now time.Time, gap time.Duration) error
}

// Errors of Watch.
var (
	ErrPending      error = ownError("domain pending until its account is confirmed and its key approved")
	ErrWildcardHost error = ownError("a wildcard has no host to probe")
)

// CertStatus is the monitor's view of one domain (or target).
type CertStatus struct {
	Name      string     `json:"name"`
	Port      int        `json:"port"`
	State     string     `json:"state"` // ok, warning, critical, pending, wildcard, unknown
	Class     string     `json:"class"` // the error class of the first failing address at the last probe; "" if none failed
	Expires   *time.Time `json:"expires"`
	IssuerCN  string     `json:"issuer"`
	Addresses int        `json:"addresses"`
	Checked   *time.Time `json:"checked"`
	Findings  []string   `json:"findings"`
}

// FindingRow is one finding as the operator sees it.
type FindingRow struct {
	Name     string     `json:"name"`
	Port     int        `json:"port"`
	Kind     string     `json:"kind"`
	Severity string     `json:"severity"`
	Detail   string     `json:"detail"`
	Opened   time.Time  `json:"opened"`
	Raised   time.Time  `json:"raised"`
	LastSeen *time.Time `json:"last_seen"`
	Closed   *time.Time `json:"closed"`
}

// shownState is the state target t is shown and counted with: unknown
// before its first probe, else the state the monitor's judge wrote.
const shownState = `CASE WHEN t.last_checked_at IS NULL THEN 'unknown' ELSE t.state END`

// certRowsSQL reads targets with their state (unknown before the first
// probe, and as long as no probe has seen a certificate: the monitor's
// judge writes it so), the error class of their first failing address,
// their soonest-expiring current certificate, its issuer, how many
// addresses they answer on, and their open findings: the monitor's, and
// the ACME ones of the viewer's account ($viewer; -1: every account's);
// a WHERE condition on t follows.
const certRowsSQL = `
SELECT t.name, t.port, ` + shownState + `,
       coalesce((SELECT o.error_class FROM mon_observations o
                 WHERE o.target_id = t.id AND o.ended_at IS NULL AND o.error_class IS NOT NULL
                 ORDER BY o.address LIMIT 1), ''),
       c.not_after, coalesce(c.issuer_cn, ''),
       (SELECT count(*) FROM mon_observations o WHERE o.target_id = t.id AND o.ended_at IS NULL),
       t.last_checked_at,
       coalesce((SELECT array_agg(f.kind ORDER BY f.kind) FROM mon_findings f
                 WHERE f.target_id = t.id AND f.closed_at IS NULL
                   AND (f.account_id IS NULL OR f.account_id = $viewer OR $viewer = -1)), '{}')
FROM mon_targets t
LEFT JOIN LATERAL (
    SELECT c.not_after, c.issuer_cn FROM mon_observations o JOIN mon_certs c ON c.fingerprint = o.fingerprint
    WHERE o.target_id = t.id AND o.ended_at IS NULL ORDER BY c.not_after LIMIT 1) c ON true
WHERE `

// certRows runs certRowsSQL with a condition, for a viewer.
func (p *Postgres) certRows(ctx context.Context, viewer int64, where string, args ...any) ([]CertStatus, error) {
	return certRowsOn(ctx, p.pool, viewer, where, args...)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// certRowsOn runs certRowsSQL with a condition on q, for the viewer: an
// account (its ACME findings are listed), 0 (none's) or -1 (all).
func certRowsOn(ctx context.Context, q querier, viewer int64, where string, args ...any) ([]CertStatus, error) {
	args = append(args, viewer)
	query := strings.ReplaceAll(certRowsSQL, "$viewer", fmt.Sprintf("$%d::bigint", len(args)))
	rows, err := q.Query(ctx, query+where+` ORDER BY c.not_after NULLS LAST, t.name, t.port`, args...)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (CertStatus, error) {
		var s CertStatus
		err := row.Scan(&s.Name, &s.Port, &s.State, &s.Class, &s.Expires, &s.IssuerCN, &s.Addresses, &s.Checked, &s.Findings)
		return s, err
	})
	return out, classify(err)
}

// Certs lists every watched target, or those of one account's domains,
// soonest expiry first.
func (p *Postgres) Certs(ctx context.Context, email string) ([]CertStatus, error) {
	if email == "" {
		return p.certRows(ctx, -1, `t.active AND t.agent IS NULL`)
	}
	return p.certRows(ctx, -1, `t.active AND `+targetOfEmail("$1"), email)
}

// targetOfEmail is the condition under which the operator's lists count
// target t as the account's with the e-mail at param (any of its keys,
// approved or not).
func targetOfEmail(param string) string { return accountNames(`a.email = ` + param) }

// accountNames is the condition under which target t is named by a domain
// of a key of an account a that meets cond: the one link from accounts
// to targets (a domain names a public target by its name and port; a
// target behind a site is its agent_targets row's, site_target).
func accountNames(cond string) string {
	return `(t.public AND EXISTS (SELECT 1 FROM domains d JOIN api_keys k ON k.id = d.api_key_id
		JOIN accounts a ON a.id = k.account_id WHERE ` + cond + ` AND d.name = t.name AND d.port = t.port)
	OR EXISTS (SELECT 1 FROM agent_targets s JOIN api_keys k ON k.id = s.api_key_id
		JOIN accounts a ON a.id = k.account_id WHERE ` + cond + ` AND s.id = t.site_target AND t.active))`
}

// Findings lists findings, newest first: all, or only open ones, of every
// target or of one account's.
func (p *Postgres) Findings(ctx context.Context, open bool, email string) ([]FindingRow, error) {
	rows, err := p.pool.Query(ctx, `SELECT t.name, t.port, f.kind, f.severity, f.detail, f.opened_at, f.raised_at,
			CASE WHEN f.closed_at IS NULL THEN t.last_checked_at ELSE f.last_seen_at END, f.closed_at
		FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE (NOT $1 OR f.closed_at IS NULL)
		  AND ($2 = '' OR `+targetOfEmail("$2")+`
		      AND (f.account_id IS NULL OR f.account_id = (SELECT id FROM accounts WHERE email = $2)))
		ORDER BY f.opened_at DESC, t.name, f.kind`, open, email)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (FindingRow, error) {
		var f FindingRow
		err := row.Scan(&f.Name, &f.Port, &f.Kind, &f.Severity, &f.Detail, &f.Opened, &f.Raised, &f.LastSeen, &f.Closed)
		return f, err
	})
	return out, classify(err)
}

// keyDomain is one domain of a key, as "cert" and "check" find it.
type keyDomain struct {
	wildcard bool
	active   bool
	account  int64 // the key's (0: none)
}

// findKeyDomain looks up a key's domain with the errors of "remove":
// unknown key, revoked key or blocked account, no such domain.
func (p *Postgres) findKeyDomain(ctx context.Context, k KeyRef, name string, port int) (keyDomain, error) {
	var revoked, blocked, confirmed bool
	var wildcard *bool
	var account int64
	err := p.pool.QueryRow(ctx, `SELECT k.revoked_at IS NOT NULL, coalesce(a.blocked_at IS NOT NULL, false),
			coalesce(a.confirmed_at IS NOT NULL, false) AND `+keyApproved+`,
			(SELECT d.wildcard FROM domains d WHERE d.api_key_id = k.id AND d.name = $2 AND d.port = $3),
			coalesce(k.account_id, 0)
		FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1`,
		k.Hash[:], name, port).Scan(&revoked, &blocked, &confirmed, &wildcard, &account)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return keyDomain{}, ErrUnknownKey
	case err != nil:
		return keyDomain{}, classify(err)
	case revoked:
		return keyDomain{}, ErrKeyRevoked
	case blocked:
		return keyDomain{}, ErrAccountBlocked
	case wildcard == nil:
		return keyDomain{}, ErrNotFound
	}
	return keyDomain{wildcard: *wildcard, active: confirmed, account: account}, nil
}

// CertStatus reports the state of one domain of a key: pending while its
// account is unconfirmed or the key waits for approval; for a wildcard, the certificate seen elsewhere
// that covers it, if any; else its target's, "unknown" before the first
// probe.
func (p *Postgres) CertStatus(ctx context.Context, k KeyRef, name string, port int) (CertStatus, error) {
	d, err := p.findKeyDomain(ctx, k, name, port)
	if err != nil {
		return CertStatus{}, err
	}
	none := CertStatus{Name: name, Port: port, State: "unknown", Findings: []string{}}
	switch {
	case !d.active:
		none.State = "pending"
		return none, nil
	case d.wildcard:
		return p.wildcardStatus(ctx, none)
	}
	rows, err := p.certRows(ctx, d.account, `t.public AND t.name = $1 AND t.port = $2`, name, port)
	if err != nil || len(rows) == 0 {
		return none, err
	}
	return rows[0], nil
}

// wildcardStatus reports the soonest-expiring certificate currently
// served anywhere that names the wildcard among its SANs.
func (p *Postgres) wildcardStatus(ctx context.Context, s CertStatus) (CertStatus, error) {
	return wildcardStatusOn(ctx, p.pool, s)
}

// wildcardStatusOn is wildcardStatus on a pool or a transaction.
func wildcardStatusOn(ctx context.Context, q rowQuerier, s CertStatus) (CertStatus, error) {
	s.State = "wildcard"
	var expires, checked time.Time
	err := q.QueryRow(ctx, `SELECT c.not_after, c.issuer_cn, t.last_checked_at
		FROM mon_certs c JOIN mon_observations o ON o.fingerprint = c.fingerprint AND o.ended_at IS NULL
		JOIN mon_targets t ON t.id = o.target_id
		WHERE t.public AND c.sans @> ARRAY[$1::text] ORDER BY c.not_after LIMIT 1`, s.Name).Scan(&expires, &s.IssuerCN, &checked)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return s, nil
	case err != nil:
		return s, classify(err)
	}
	s.Expires, s.Checked, s.Addresses = &expires, &checked, 1
	return s, nil
}

// RequestCheck makes the target of an active domain due now, or gap after
// its last probe, whichever is later.
func (p *Postgres) RequestCheck(ctx context.Context, k KeyRef, name string, port int, now time.Time, gap time.Duration) error {
	d, err := p.findKeyDomain(ctx, k, name, port)
	switch {
	case err != nil:
		return err
	case !d.active:
		return ErrPending
	case d.wildcard:
		return ErrWildcardHost
	}
	_, err = p.pool.Exec(ctx, `INSERT INTO mon_targets (name, port, next_due, check_asked_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (name, port) WHERE public DO UPDATE SET check_asked_at = $3, active = true, removed_at = NULL,
			next_due = least(mon_targets.next_due,
			                 greatest($3, coalesce(mon_targets.last_checked_at + $4::interval, $3)))`,
		name, port, now, gap)
	return classify(err)
}

// MonitorOverview is what /metrics reports of all targets.
type MonitorOverview struct {
	ByState       map[string]int
	OldestOverdue time.Duration // how late the most overdue unleased target is
}

// Overview counts active targets by state (those behind sites too; not
// the agents' own rows nor the LDAP certificates') and measures the
// oldest lag of the central monitor's (public) targets.
func (p *Postgres) Overview(ctx context.Context, now time.Time) (MonitorOverview, error) {
	o := MonitorOverview{ByState: map[string]int{}}
	rows, err := p.pool.Query(ctx, `SELECT `+shownState+`, count(*)
		FROM mon_targets t WHERE t.active AND t.agent IS NULL AND t.discovered_cert IS NULL GROUP BY 1`)
	if err != nil {
		return o, classify(err)
	}
	var state string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error { o.ByState[state] = n; return nil }); err != nil {
		return o, classify(err)
	}
	var oldest *time.Time
	err = p.pool.QueryRow(ctx, `SELECT min(next_due) FROM mon_targets
		WHERE active AND public AND next_due <= $1 AND (lease_until IS NULL OR lease_until < $1)`, now).Scan(&oldest)
	if oldest != nil {
		o.OldestOverdue = now.Sub(*oldest)
	}
	return o, classify(err)
}
