// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// Digest is an account's week: every domain's certificate, and what
// changed.
type Digest struct {
	Domains []CertStatus   // soonest expiry first
	Changes []DigestChange // oldest first
	Since   time.Time
	// NewProposals counts the endpoints the account's agents discovered
	// for the first time since Since that are neither ignored nor added.
	NewProposals int
	// SilentAgents are the account's agents with an open agent_silent
	// finding; LDAPCerts the certificates its agents read from LDAP
	// stores (at most MaxDigestLDAPCerts, soonest expiry first), of
	// LDAPCertsTotal.
	SilentAgents   []SilentAgent
	LDAPCerts      []LDAPCertView
	LDAPCertsTotal int
	// LDAPCertProblems counts those of LDAPCertsTotal (not only those
	// listed) with an open finding.
	LDAPCertProblems int
}

// DigestChange is one line of "what changed this week".
type DigestChange struct {
	At     time.Time `json:"at"`
	Target string    `json:"target"`
	What   string    `json:"what"` // renewed, added, removed, new finding: KIND
	Detail string    `json:"detail"`
}

// accountTargets is certRowsSQL's condition for one account's active
// domains ($1: the account's id).
var accountTargets = `t.active AND ` + accountNames(`a.id = $1 AND `+keyApproved)

// digestChangesSQL lists an account's week ($1: account, $2: since):
// renewals, domains added and removed, findings opened (of its public
// domains and its targets behind sites); keys waiting for approval are
// left out.
const digestChangesSQL = `
WITH mine AS (
    SELECT t.id FROM domains d JOIN api_keys k ON k.id = d.api_key_id
    JOIN mon_targets t ON t.public AND t.name = d.name AND t.port = d.port
    WHERE k.account_id = $1 AND ` + keyApproved + `
    UNION
    SELECT t.id FROM agent_targets s JOIN api_keys k ON k.id = s.api_key_id JOIN mon_targets t ON t.site_target = s.id
    WHERE k.account_id = $1 AND t.active AND ` + keyApproved + `
)
SELECT e.at, t.name || ':' || t.port, 'renewed', e.detail
FROM mon_events e JOIN mon_targets t ON t.id = e.target_id JOIN mine ON mine.id = t.id WHERE e.at >= $2
UNION ALL
SELECT min(d.created_at), d.name || ':' || d.port, 'added', ''
FROM domains d JOIN api_keys k ON k.id = d.api_key_id WHERE k.account_id = $1 AND ` + keyApproved + ` AND d.created_at >= $2
GROUP BY d.name, d.port
UNION ALL
SELECT au.at, (au.detail->>'domain') || ':' || (au.detail->>'port'), 'removed', ''
FROM audit au WHERE au.action = 'domain.remove' AND au.at >= $2
  AND au.key_prefix IN (SELECT key_prefix FROM api_keys k WHERE account_id = $1 AND ` + keyApproved + `)
UNION ALL
SELECT f.opened_at, t.name || ':' || t.port, 'new finding: ' || f.kind, f.detail
FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id JOIN mine ON mine.id = t.id
WHERE f.opened_at >= $2 AND (f.account_id IS NULL OR f.account_id = $1)
ORDER BY 1`

// digestOf reads an account's digest: its week ends now.
func digestOf(ctx context.Context, q pgx.Tx, account int64, _ time.Duration) (Digest, error) {
	var d Digest
	if err := q.QueryRow(ctx, `SELECT now() - interval '7 days'`).Scan(&d.Since); err != nil {
		return d, err
	}
	var err error
	if d.Domains, err = certRowsOn(ctx, q, account, accountTargets, account); err != nil {
		return d, err
	}
	rows, err := q.Query(ctx, digestChangesSQL, account, d.Since)
	if err != nil {
		return d, err
	}
	if d.Changes, err = pgx.CollectRows(rows, pgx.RowToStructByPos[DigestChange]); err != nil {
		return d, err
	}
	if d.NewProposals, err = newProposals(ctx, q, account, d.Since); err != nil {
		return d, err
	}
	d.SilentAgents, d.LDAPCerts, d.LDAPCertsTotal, err = agentsAndLDAP(ctx, q, account, MaxDigestLDAPCerts)
	if err != nil {
		return d, err
	}
	err = q.QueryRow(ctx, ldapCertProblemsSQL, account).Scan(&d.LDAPCertProblems)
	return d, err
}

// DigestFor reads the digest an account would get now (for the
// operator's dry run).
func (p *Postgres) DigestFor(ctx context.Context, email string) (Digest, error) {
	var d Digest
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		id, err := accountID(ctx, tx, email)
		if err != nil {
			return err
		}
		d, err = digestOf(ctx, tx, id, 0)
		return err
	})
	return d, classify(err)
}

// digestAccountsSQL picks the accounts due this week's digest ($1): every
// confirmed, unblocked account that has not turned the digest off, has
// not had this week's, and has something to be told of: an active
// domain, or a target behind a site of an approved working key, an open
// proposal still seen (not gone), or a certificate from an LDAP store.
var digestAccountsSQL = `SELECT a.id, a.email FROM accounts a
WHERE a.confirmed_at IS NOT NULL AND a.blocked_at IS NULL AND a.digest_off_at IS NULL
  AND (EXISTS (SELECT 1 FROM api_keys k JOIN domains d ON d.api_key_id = k.id WHERE k.account_id = a.id AND ` + activeDomain + `)
    OR EXISTS (SELECT 1 FROM api_keys k JOIN agent_targets s ON s.api_key_id = k.id WHERE k.account_id = a.id AND ` + activeDomain + `
        AND ` + liveSiteTarget("s") + `)
    OR EXISTS (SELECT 1 FROM discovered d WHERE d.gone_at IS NULL AND ` + openProposalsOf("a.id") + `)
    OR EXISTS (SELECT 1 FROM discovered_certs c WHERE c.account_id = a.id AND c.gone_at IS NULL))
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.dedup_key = 'digest:' || a.id || ':' || $1)
ORDER BY a.id`

// QueueDigests queues this week's digest for every account
// digestAccountsSQL picks, once
// the week's digest moment (finding.DigestMoment) has passed. The dedup key (account and week)
// makes it once a week whatever number of monitors run. It reports how
// many it queued.
func (p *Postgres) QueueDigests(ctx context.Context, now time.Time, weekday time.Weekday, hour int) (int, error) {
	moment := finding.DigestMoment(now, weekday, hour)
	if now.Before(moment) {
		return 0, nil
	}
	week := finding.DigestWeek(moment)
	queued := 0
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		queued = 0
		rows, err := tx.Query(ctx, digestAccountsSQL, week)
		if err != nil {
			return err
		}
		owners, err := pgx.CollectRows(rows, pgx.RowToStructByPos[owner])
		if err != nil {
			return err
		}
		for _, o := range owners {
			id, err := queueLinkedMail(ctx, tx, o, "digest", fmt.Sprintf("digest:%d:%s", o.ID, week), now, "digest_off")
			if err != nil {
				return err
			}
			if id != 0 {
				queued++
			}
		}
		return nil
	})
	return queued, classify(err)
}
