// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// LDAPCertWatch is the monitor's row of a certificate read from an LDAP
// store, leased for the judge of its expiry: the row's past and the
// certificate as stored.
type LDAPCertWatch struct {
	Target    finding.Target
	DN        string
	Subject   string
	Issuer    string
	NotBefore time.Time
	NotAfter  time.Time
	// Gone: the store no longer has it. Renewed: a certificate of the same
	// DN, attribute and subject that expires later is in the store now.
	Gone, Renewed bool
}

// ensureLDAPRowsSQL gives each certificate in a store its row in
// mon_targets (named by its DN, port 0; not public, so never probed).
const ensureLDAPRowsSQL = `INSERT INTO mon_targets (name, port, discovered_cert, state, next_due)
	SELECT d.dn, 0, d.id, 'ok', 'epoch' FROM discovered_certs d
	WHERE d.gone_at IS NULL AND NOT EXISTS (SELECT 1 FROM mon_targets t WHERE t.discovered_cert = d.id)
	ON CONFLICT (discovered_cert) DO NOTHING`

// leaseLDAPSQL leases, up to $4, the rows of stored certificates due at
// $1, and those gone with an open finding of kind $5. Rows another
// process holds are skipped.
const leaseLDAPSQL = `
WITH due AS (
    SELECT t.id, d.dn, d.subject, d.issuer, d.not_before, d.not_after, d.gone_at IS NOT NULL AS gone,
        EXISTS (SELECT 1 FROM discovered_certs n WHERE n.account_id = d.account_id AND n.site = d.site AND n.dn = d.dn
            AND n.attribute = d.attribute AND n.subject = d.subject AND n.gone_at IS NULL AND n.not_after > d.not_after) AS renewed
    FROM mon_targets t JOIN discovered_certs d ON d.id = t.discovered_cert
    WHERE (t.lease_until IS NULL OR t.lease_until < $1)
      AND (t.next_due <= $1 OR (d.gone_at IS NOT NULL AND EXISTS (SELECT 1 FROM mon_findings f
          WHERE f.target_id = t.id AND f.kind = $5 AND f.closed_at IS NULL)))
    ORDER BY t.next_due, t.id LIMIT $4
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE mon_targets t SET lease_owner = $2, lease_until = $3 FROM due WHERE t.id = due.id
RETURNING t.id, t.name, t.port, coalesce(t.last_checked_at, 'epoch'), t.failures, t.suspects,
    due.subject, due.issuer, due.not_before, due.not_after, due.gone, due.renewed`

// LeaseLDAPCerts leases to owner until until, up to n, the rows of the
// certificates read from LDAP stores whose expiry is due to be judged at
// now (made first for certificates new to the store), with their past.
func (p *Postgres) LeaseLDAPCerts(ctx context.Context, owner string, now, until time.Time, n int) ([]LDAPCertWatch, error) {
	var out []LDAPCertWatch
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, ensureLDAPRowsSQL); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, leaseLDAPSQL, now, owner, until, n, finding.KindExpiry)
		if err != nil {
			return err
		}
		out = nil
		var targets []finding.Target
		for rows.Next() {
			var w LDAPCertWatch
			t := &w.Target
			if err := rows.Scan(&t.ID, &t.Name, &t.Port, &t.LastChecked, &t.Failures, &t.Suspects,
				&w.Subject, &w.Issuer, &w.NotBefore, &w.NotAfter, &w.Gone, &w.Renewed); err != nil {
				return err
			}
			t.CertSeen = true // the certificate is known without a probe
			w.DN = t.Name
			targets, out = append(targets, *t), append(out, w)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := loadPast(ctx, tx, targets); err != nil {
			return err
		}
		for i := range targets {
			out[i].Target = targets[i]
		}
		return nil
	})
	return out, classify(err)
}
