// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// DiscoveredCerts keeps the certificates agents read from LDAP stores.
type DiscoveredCerts interface {
	// StoreDiscoveredCerts records one LDAP source's complete list from a
	// claimed agent: new certificates are added, known ones seen again,
	// and the source's others marked gone.
	StoreDiscoveredCerts(ctx context.Context, b CertBatch) (CertCounts, error)
	// AllDiscoveredCerts lists every such certificate not gone, soonest
	// expiry first, with its account, for the operator.
	AllDiscoveredCerts(ctx context.Context) ([]DiscoveredCert, error)
}

var _ DiscoveredCerts = (*Postgres)(nil)

// DiscoveredCert is one certificate seen in an LDAP store.
type DiscoveredCert struct {
	Email       string     `json:"email,omitempty"`
	Site        string     `json:"site"`
	Source      string     `json:"source"`
	DN          string     `json:"dn"`
	Attribute   string     `json:"attribute"`
	Fingerprint []byte     `json:"fingerprint"`
	Subject     string     `json:"subject"`
	Issuer      string     `json:"issuer"`
	NotBefore   time.Time  `json:"not_before"`
	NotAfter    time.Time  `json:"not_after"`
	FirstSeen   time.Time  `json:"first_seen"`
	Gone        *time.Time `json:"gone,omitempty"`
}

// CertBatch is one LDAP source's certificates from one agent.
type CertBatch struct {
	AgentKey KeyRef
	Source   string
	Certs    []DiscoveredCert
}

// CertCounts says what a batch did.
type CertCounts struct{ New, Seen, Gone int }

// StoreDiscoveredCerts records a batch in one transaction.
func (p *Postgres) StoreDiscoveredCerts(ctx context.Context, b CertBatch) (CertCounts, error) {
	var c CertCounts
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		ag, err := claimedAgentOf(ctx, tx, b.AgentKey)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('certs/' || $1::bigint::text || '/' || $2 || '/' || $3, 0))`,
			ag.account, ag.site, b.Source); err != nil {
			return err
		}
		c, err = upsertCerts(ctx, tx, ag.account, ag.site, ag.id, b)
		return err
	})
	return c, classify(err)
}

// upsertCerts adds and refreshes the batch's certificates and marks the
// source's others gone.
func upsertCerts(ctx context.Context, tx pgx.Tx, account int64, site string, agent int64, b CertBatch) (CertCounts, error) {
	var c CertCounts
	n := len(b.Certs)
	dns, attrs, fps, subs, iss := make([]string, n), make([]string, n), make([][]byte, n), make([]string, n), make([]string, n)
	nbs, nas := make([]time.Time, n), make([]time.Time, n)
	for i, d := range b.Certs {
		dns[i], attrs[i], fps[i], subs[i], iss[i], nbs[i], nas[i] = d.DN, d.Attribute, d.Fingerprint, d.Subject, d.Issuer, d.NotBefore, d.NotAfter
	}
	err := tx.QueryRow(ctx, `WITH c AS (
			SELECT DISTINCT ON (dn, attribute, fp) * FROM unnest($5::text[], $6::text[], $7::bytea[], $8::text[], $9::text[],
				$10::timestamptz[], $11::timestamptz[]) AS c(dn, attribute, fp, subject, issuer, nb, na)
		), up AS (
			INSERT INTO discovered_certs (account_id, site, source, agent_id, dn, attribute, fingerprint, subject, issuer, not_before, not_after)
			SELECT $1, $2, $3, $4, dn, attribute, fp, subject, issuer, nb, na FROM c
			ON CONFLICT (account_id, site, source, dn, attribute, fingerprint) DO UPDATE SET agent_id = excluded.agent_id,
				last_seen = now(), gone_at = NULL
			RETURNING xmax = 0 AS inserted
		)
		SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`,
		account, site, b.Source, agent, dns, attrs, fps, subs, iss, nbs, nas).Scan(&c.New, &c.Seen)
	if err != nil {
		return c, err
	}
	tag, err := tx.Exec(ctx, `UPDATE discovered_certs SET gone_at = now()
		WHERE account_id = $1 AND site = $2 AND source = $3 AND gone_at IS NULL AND last_seen < now()`, account, site, b.Source)
	c.Gone = int(tag.RowsAffected())
	return c, err
}

// AllDiscoveredCerts lists the certificates not gone, soonest expiry first.
func (p *Postgres) AllDiscoveredCerts(ctx context.Context) ([]DiscoveredCert, error) {
	rows, err := p.pool.Query(ctx, `SELECT a.email, d.site, d.source, d.dn, d.attribute, d.fingerprint, d.subject, d.issuer,
			d.not_before, d.not_after, d.first_seen, d.gone_at
		FROM discovered_certs d JOIN accounts a ON a.id = d.account_id
		WHERE d.gone_at IS NULL ORDER BY d.not_after, a.email, d.dn`)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DiscoveredCert, error) {
		var d DiscoveredCert
		err := r.Scan(&d.Email, &d.Site, &d.Source, &d.DN, &d.Attribute, &d.Fingerprint, &d.Subject, &d.Issuer,
			&d.NotBefore, &d.NotAfter, &d.FirstSeen, &d.Gone)
		return d, err
	})
	return out, classify(err)
}
