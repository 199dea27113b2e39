// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// AccountView is what the account page shows: every domain of the
// account with the monitor's view of it.
type AccountView struct {
	Email   string
	Domains []DomainView
	// Proposals are the endpoints the account's agents discovered that
	// are neither ignored nor added yet (at most MaxPageProposals);
	// ProposalsTotal counts them all.
	Proposals      []Discovered
	ProposalsTotal int
	// SilentAgents are the account's agents with an open agent_silent
	// finding.
	SilentAgents []SilentAgent
	// LDAPCerts are the certificates the account's agents read from LDAP
	// stores (at most MaxPageLDAPCerts, soonest expiry first);
	// LDAPCertsTotal counts them all.
	LDAPCerts      []LDAPCertView
	LDAPCertsTotal int
}

// DomainView is one domain on the account page: its status (the same as
// "command cert" gives), the addresses it answered on, its open findings
// and the certificates seen over time.
type DomainView struct {
	CertStatus
	Site      string     // the site it is behind ("": a public domain)
	NotBefore *time.Time // of the soonest-expiring certificate, for the bar to expiry
	Served    []AddressView
	Open      []FindingRow
	History   []CertSeen
}

// AddressView is what one address serves now.
type AddressView struct {
	Address    netip.Addr
	NotBefore  *time.Time
	NotAfter   *time.Time
	ErrorClass string
	Stale      bool // serves a certificate issued before another address's
}

// CertSeen is a certificate the name has served, and when.
type CertSeen struct {
	Fingerprint []byte
	IssuerCN    string
	NotAfter    time.Time
	FirstSeen   time.Time
	LastSeen    time.Time
}

// AccountPage reads the account an account-page link stands for.
func (p *Postgres) AccountPage(ctx context.Context, raw string) (AccountView, error) {
	var v AccountView
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		hash := HashToken(raw)
		var id int64
		err := tx.QueryRow(ctx, `SELECT a.id, a.email FROM account_links l JOIN accounts a ON a.id = l.account_id
			WHERE l.hash = $1 AND l.revoked_at IS NULL`, hash[:]).Scan(&id, &v.Email)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrTokenUnknown
		}
		if err != nil {
			return err
		}
		if v.Domains, err = pageDomains(ctx, tx, id); err != nil {
			return err
		}
		if v.Proposals, v.ProposalsTotal, err = pageProposals(ctx, tx, id); err != nil {
			return err
		}
		v.SilentAgents, v.LDAPCerts, v.LDAPCertsTotal, err = agentsAndLDAP(ctx, tx, id, MaxPageLDAPCerts)
		return err
	})
	return v, classify(err)
}

// pageDomains reads each distinct domain of an account for its page,
// leaving out those of keys that wait for the owner's approval.
func pageDomains(ctx context.Context, tx pgx.Tx, account int64) ([]DomainView, error) {
	rows, err := tx.Query(ctx, `SELECT d.name, d.port, bool_or(d.wildcard), bool_or(`+activeDomain+`)
		FROM domains d JOIN api_keys k ON k.id = d.api_key_id JOIN accounts a ON a.id = k.account_id
		WHERE a.id = $1 AND `+keyApproved+` GROUP BY d.name, d.port ORDER BY d.name, d.port`, account)
	if err != nil {
		return nil, err
	}
	type domain struct {
		Name             string
		Port             int
		Wildcard, Active bool
	}
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[domain])
	if err != nil {
		return nil, err
	}
	out := make([]DomainView, 0, len(ds))
	for _, d := range ds {
		dv := DomainView{CertStatus: CertStatus{Name: d.Name, Port: d.Port, State: "unknown", Findings: []string{}}}
		switch {
		case !d.Active:
			dv.State = "pending"
		case d.Wildcard:
			if dv.CertStatus, err = wildcardStatusOn(ctx, tx, dv.CertStatus); err != nil {
				return nil, err
			}
		default:
			if err := targetView(ctx, tx, account, &dv, `public AND name = $1 AND port = $2`, d.Name, d.Port); err != nil {
				return nil, err
			}
		}
		out = append(out, dv)
	}
	sites, err := pageSiteTargets(ctx, tx, account)
	if err != nil {
		return nil, err
	}
	out = append(out, sites...)
	sortBySoonest(out)
	return out, nil
}

// pageSiteTargets reads the account's targets behind sites for its page,
// leaving out those of keys that wait for the owner's approval.
func pageSiteTargets(ctx context.Context, tx pgx.Tx, account int64) ([]DomainView, error) {
	rows, err := tx.Query(ctx, `SELECT s.id, s.name, s.port, s.site FROM agent_targets s JOIN api_keys k ON k.id = s.api_key_id
		JOIN accounts a ON a.id = k.account_id WHERE a.id = $1 AND `+activeDomain+` AND `+liveSiteTarget("s")+`
		ORDER BY s.name, s.port, s.site, s.id`, account)
	if err != nil {
		return nil, err
	}
	type target struct {
		ID   int64
		Name string
		Port int
		Site string
	}
	ts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[target])
	if err != nil {
		return nil, err
	}
	out := make([]DomainView, 0, len(ts))
	for _, s := range ts {
		dv := DomainView{CertStatus: CertStatus{Name: s.Name, Port: s.Port, State: "unknown", Findings: []string{}}, Site: s.Site}
		if err := targetView(ctx, tx, account, &dv, `site_target = $1`, s.ID); err != nil {
			return nil, err
		}
		out = append(out, dv)
	}
	return out, nil
}

// targetView fills in a domain's target for an account's page: status,
// addresses, findings (the monitor's and the account's own ACME ones),
// history. where picks the target's row of mon_targets.
func targetView(ctx context.Context, tx pgx.Tx, account int64, dv *DomainView, where string, args ...any) error {
	var id int64
	err := tx.QueryRow(ctx, `SELECT id FROM mon_targets WHERE `+where, args...).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := certRowsOn(ctx, tx, account, `t.id = $1`, id)
	if err != nil || len(st) == 0 {
		return err
	}
	dv.CertStatus = st[0]
	rows, err := tx.Query(ctx, `SELECT o.address, c.not_before, c.not_after, coalesce(o.error_class, '')
		FROM mon_observations o LEFT JOIN mon_certs c ON c.fingerprint = o.fingerprint
		WHERE o.target_id = $1 AND o.ended_at IS NULL ORDER BY o.address`, id)
	if err != nil {
		return err
	}
	if dv.Served, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (AddressView, error) {
		var a AddressView
		err := r.Scan(&a.Address, &a.NotBefore, &a.NotAfter, &a.ErrorClass)
		return a, err
	}); err != nil {
		return err
	}
	markStale(dv)
	rows, err = tx.Query(ctx, `SELECT c.fingerprint, c.issuer_cn, c.not_after, min(o.first_seen_at),
			max(coalesce(o.last_checked_at, t.last_checked_at))
		FROM mon_observations o JOIN mon_targets t ON t.id = o.target_id JOIN mon_certs c ON c.fingerprint = o.fingerprint
		WHERE t.id = $1 GROUP BY c.fingerprint, c.issuer_cn, c.not_after ORDER BY 4 DESC`, id)
	if err != nil {
		return err
	}
	if dv.History, err = pgx.CollectRows(rows, pgx.RowToStructByPos[CertSeen]); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `SELECT t.name, t.port, f.kind, f.severity, f.detail, f.opened_at, f.raised_at,
			t.last_checked_at, f.closed_at
		FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE t.id = $1 AND f.closed_at IS NULL AND (f.account_id IS NULL OR f.account_id = $2)
		ORDER BY f.kind`, id, account)
	if err != nil {
		return err
	}
	dv.Open, err = pgx.CollectRows(rows, pgx.RowToStructByPos[FindingRow])
	return err
}

// markStale marks the addresses serving a certificate issued before the
// newest one another address serves (the monitor's stale endpoint).
func markStale(dv *DomainView) {
	var newest *AddressView
	for i := range dv.Served {
		a := &dv.Served[i]
		if a.NotBefore != nil && (newest == nil || a.NotBefore.After(*newest.NotBefore)) {
			newest = a
		}
		if dv.Expires != nil && a.NotAfter != nil && a.NotAfter.Equal(*dv.Expires) {
			dv.NotBefore = a.NotBefore
		}
	}
	for i := range dv.Served {
		a := &dv.Served[i]
		a.Stale = newest != nil && a.NotBefore != nil && a.NotBefore.Before(*newest.NotBefore) &&
			a.NotAfter.Before(*newest.NotAfter)
	}
}

// sortBySoonest orders domains by expiry, those without one last, then
// by name.
func sortBySoonest(ds []DomainView) {
	slices.SortStableFunc(ds, func(a, b DomainView) int {
		switch {
		case a.Expires == nil && b.Expires == nil:
			return 0
		case a.Expires == nil:
			return 1
		case b.Expires == nil:
			return -1
		}
		return a.Expires.Compare(*b.Expires)
	})
}

// RotateAccountLinks revokes every account-page link of an account: the
// next mail carries a fresh one. It reports how many it revoked.
func (p *Postgres) RotateAccountLinks(ctx context.Context, email string) (int64, error) {
	tag, err := p.pool.Exec(ctx, `UPDATE account_links SET revoked_at = now()
		WHERE revoked_at IS NULL AND account_id = (SELECT id FROM accounts WHERE email = $1)`, email)
	if err != nil {
		return 0, classify(err)
	}
	return tag.RowsAffected(), nil
}
