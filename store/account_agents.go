// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// SilentAgent is a claimed agent of an account with an open agent_silent
// finding. Host is the agent's own word (stored cut and cleaned).
type SilentAgent struct {
	ID, Site, Host string
	LastSeen       time.Time
	Since          time.Time // the finding's opening
	Severity       string
}

// LDAPCertView is a certificate an account's agents read from an LDAP
// store (not gone from it), with the monitor's judge of its expiry. DN,
// Subject and Issuer come from the store: the page and the mail clean
// them.
type LDAPCertView struct {
	Site, DN, Attribute, Subject, Issuer string
	NotAfter                             time.Time
	State                                string // the row's state; unknown before its first judge
	// Finding is its open finding ("" when none): kind, severity, detail.
	Finding, Severity, Detail string
}

// MaxPageLDAPCerts is how many LDAP certificates the account page shows
// at most, soonest expiry first (a store may hold 20,000).
const MaxPageLDAPCerts = 500

// accountSilentAgentsSQL lists the account's agents ($1) with an open
// agent_silent finding ($2), by site and id.
const accountSilentAgentsSQL = `SELECT g.agent_id, g.site, g.host, g.last_seen_at, f.opened_at, f.severity
	FROM agents g JOIN mon_targets t ON t.agent = g.id
	JOIN mon_findings f ON f.target_id = t.id AND f.kind = $2 AND f.closed_at IS NULL
	WHERE g.account_id = $1 ORDER BY g.site, g.agent_id`

// accountSilentAgents reads the account's silent agents.
func accountSilentAgents(ctx context.Context, tx pgx.Tx, account int64) ([]SilentAgent, error) {
	rows, err := tx.Query(ctx, accountSilentAgentsSQL, account, finding.KindAgentSilent)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[SilentAgent])
}

// siteSilentAgentsSQL counts the agents of an account ($1) and site ($2)
// with an open agent_silent finding ($3).
const siteSilentAgentsSQL = `SELECT count(*) FROM agents g JOIN mon_targets t ON t.agent = g.id
	JOIN mon_findings f ON f.target_id = t.id AND f.kind = $3 AND f.closed_at IS NULL
	WHERE g.account_id = $1 AND g.site = $2`

// accountLDAPCertsSQL lists, soonest expiry first and at most $2, the
// certificates of the account ($1) still in their stores, with the
// worst open finding of each.
const accountLDAPCertsSQL = `SELECT d.site, d.dn, d.attribute, d.subject, d.issuer, d.not_after,
		CASE WHEN t.last_checked_at IS NULL THEN 'unknown' ELSE t.state END,
		coalesce(f.kind, ''), coalesce(f.severity, ''), coalesce(f.detail, '')
	FROM discovered_certs d LEFT JOIN mon_targets t ON t.discovered_cert = d.id
	LEFT JOIN LATERAL (SELECT kind, severity, detail FROM mon_findings
		WHERE target_id = t.id AND closed_at IS NULL
		ORDER BY array_position(ARRAY['expired', 'critical', 'warning'], severity), kind LIMIT 1) f ON true
	WHERE d.account_id = $1 AND d.gone_at IS NULL
	ORDER BY d.not_after, d.dn, d.id LIMIT $2`

// ldapCertProblemsSQL counts the account's ($1) certificates still in
// their LDAP stores with an open finding.
const ldapCertProblemsSQL = `SELECT count(*) FROM discovered_certs d WHERE d.account_id = $1 AND d.gone_at IS NULL
	AND EXISTS (SELECT 1 FROM mon_targets t JOIN mon_findings f ON f.target_id = t.id AND f.closed_at IS NULL
		WHERE t.discovered_cert = d.id)`

// accountLDAPCerts reads up to limit of the account's LDAP certificates,
// and how many it has in all.
func accountLDAPCerts(ctx context.Context, tx pgx.Tx, account int64, limit int) ([]LDAPCertView, int, error) {
	var total int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM discovered_certs WHERE account_id = $1 AND gone_at IS NULL`,
		account).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := tx.Query(ctx, accountLDAPCertsSQL, account, limit)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LDAPCertView])
	return out, total, err
}

// MaxDigestLDAPCerts is how many LDAP certificates the weekly digest
// lists at most, soonest expiry first.
const MaxDigestLDAPCerts = 50

// agentsAndLDAP reads an account's silent agents, and up to limit of its
// LDAP certificates with how many it has in all: for its page and its
// digest.
func agentsAndLDAP(ctx context.Context, tx pgx.Tx, account int64, limit int) ([]SilentAgent, []LDAPCertView, int, error) {
	silent, err := accountSilentAgents(ctx, tx, account)
	if err != nil {
		return nil, nil, 0, err
	}
	certs, total, err := accountLDAPCerts(ctx, tx, account, limit)
	return silent, certs, total, err
}

// siteSilentAgents counts the agents of an account's site with an open
// agent_silent finding.
func (p *Postgres) siteSilentAgents(ctx context.Context, account int64, site string) (int, error) {
	var n int
	err := p.pool.QueryRow(ctx, siteSilentAgentsSQL, account, site, finding.KindAgentSilent).Scan(&n)
	return n, err
}
