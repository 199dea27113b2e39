// SPDX-License-Identifier: Apache-2.0

package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// writeTargetSQL records a probe on its target, only while owner still
// holds the lease, and releases it. It returns the previous check's time,
// which becomes the last check of the observations the probe ends. A
// "command check" that arrived while the probe ran ($8: its start) is
// honoured a minute later, since the probe may have seen the old state.
const writeTargetSQL = `
UPDATE mon_targets t SET last_checked_at = $2, state = $4, failures = $5, suspects = $6,
    next_due = CASE WHEN t.check_asked_at >= $8 THEN least($3, $2 + interval '1 minute') ELSE $3 END,
    probes = t.probes + 1, lease_owner = NULL, lease_until = NULL
FROM (SELECT id, last_checked_at FROM mon_targets WHERE id = $1) old
WHERE t.id = old.id AND t.lease_owner = $7 AND t.lease_until >= $2
RETURNING old.last_checked_at`

// WriteBack writes verdicts in one transaction: first every target row
// (one round trip), then the history of those whose lease was still held
// (one more), then the alert items their findings call for, batched per
// account for alertBatch. It reports which verdicts were written; a
// verdict whose lease ran out is dropped whole, since another monitor
// owns the target.
func (p *Postgres) WriteBack(ctx context.Context, owner string, vs []finding.Verdict, alertBatch time.Duration) ([]bool, error) {
	held := make([]bool, len(vs))
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		clear(held)
		b := &pgx.Batch{}
		for _, v := range vs {
			b.Queue(writeTargetSQL, v.TargetID, v.CheckedAt, v.NextDue, v.State, v.Failures, nonNil(v.Suspects), owner, v.StartedAt)
		}
		prevChecked := make([]*time.Time, len(vs))
		br := tx.SendBatch(ctx, b)
		for i := range vs {
			err := br.QueryRow().Scan(&prevChecked[i])
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				br.Close()
				return err
			default:
				held[i] = true
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
		b = &pgx.Batch{}
		queueCerts(b, vs, held)
		for i, v := range vs {
			if held[i] {
				queueHistory(b, v, prevChecked[i])
			}
		}
		if b.Len() == 0 {
			return nil
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		var written []finding.Verdict
		for i, v := range vs {
			if held[i] {
				written = append(written, v)
			}
		}
		if err := queueAlerts(ctx, tx, written, alertBatch); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	return held, nil
}

// queueCerts inserts the certificates the written verdicts refer to, each
// once and in fingerprint order, so that two monitors meeting the same new
// certificates never wait for each other in a circle.
func queueCerts(b *pgx.Batch, vs []finding.Verdict, held []bool) {
	seen := map[[32]byte]time.Time{}
	var certs []finding.CertInfo
	for i, v := range vs {
		for _, c := range v.Certs {
			if _, ok := seen[c.Fingerprint]; held[i] && !ok {
				seen[c.Fingerprint] = v.CheckedAt
				certs = append(certs, c)
			}
		}
	}
	slices.SortFunc(certs, func(a, b finding.CertInfo) int { return bytes.Compare(a.Fingerprint[:], b.Fingerprint[:]) })
	for _, c := range certs {
		b.Queue(`INSERT INTO mon_certs (fingerprint, subject, issuer, issuer_cn, serial, sans, not_before, not_after,
				key_type, key_bits, sig_alg, first_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (fingerprint) DO NOTHING`,
			c.Fingerprint[:], c.Subject, c.Issuer, c.IssuerCN, c.Serial, nonNil(c.SANs), c.NotBefore, c.NotAfter,
			c.KeyType, c.KeyBits, c.SigAlg, seen[c.Fingerprint])
	}
}

// queueHistory adds the rows a verdict changes besides its target's (its
// certificates come first, from queueCerts).
func queueHistory(b *pgx.Batch, v finding.Verdict, prevChecked *time.Time) {
	const endSQL = `UPDATE mon_observations SET ended_at = $3, last_checked_at = $4
		WHERE target_id = $1 AND address = $2 AND ended_at IS NULL`
	for _, o := range v.Observe {
		b.Queue(endSQL, v.TargetID, o.Address, v.CheckedAt, prevChecked)
		b.Queue(`INSERT INTO mon_observations (target_id, address, fingerprint, chain, tls_version, error_class,
				error_detail, first_seen_at) VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), nullif($7, ''), $8)`,
			v.TargetID, o.Address, o.Fingerprint, nonNilBytes(o.Chain), o.TLSVersion, o.ErrorClass, o.ErrorDetail, v.CheckedAt)
	}
	for _, a := range v.Gone {
		b.Queue(endSQL, v.TargetID, a, v.CheckedAt, prevChecked)
	}
	for _, f := range v.Open {
		b.Queue(`INSERT INTO mon_findings (target_id, kind, severity, detail, opened_at, raised_at)
			VALUES ($1, $2, $3, $4, $5, $5)`, v.TargetID, f.Kind, f.Severity, f.Detail, v.CheckedAt)
	}
	for _, f := range v.Change {
		b.Queue(`UPDATE mon_findings SET detail = $4,
				raised_at = CASE WHEN `+finding.RankSQL("$3")+` > `+finding.RankSQL("severity")+` THEN $5 ELSE raised_at END,
				severity = $3
			WHERE target_id = $1 AND kind = $2 AND closed_at IS NULL`, v.TargetID, f.Kind, f.Severity, f.Detail, v.CheckedAt)
	}
	for _, kind := range v.Close {
		b.Queue(`UPDATE mon_findings SET closed_at = $3, last_seen_at = $4
			WHERE target_id = $1 AND kind = $2 AND closed_at IS NULL`, v.TargetID, kind, v.CheckedAt, prevChecked)
	}
	for _, e := range v.Events {
		b.Queue(`INSERT INTO mon_events (target_id, at, kind, detail) VALUES ($1, $2, $3, $4)`,
			v.TargetID, v.CheckedAt, e.Kind, e.Detail)
	}
}

// Housekeep deletes what is older than the history kept: targets no
// longer watched, closed findings, ended observations, events, the
// certificates nothing refers to any more, account-page links revoked
// (rotate-links) before the cutoff, and certificates gone from their LDAP
// store before the cutoff whose findings all closed before it too (with
// their row). A link that was never revoked stays: every mail's link keeps
// working. Agents' jobs done or void are deleted after agentJobsKept,
// whatever the cutoff.
func (p *Postgres) Housekeep(ctx context.Context, cutoff time.Time) (int64, error) {
	var deleted int64
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		for _, q := range []string{
			purgeRemovedSiteTargetsSQL,
			`DELETE FROM mon_targets WHERE NOT active AND removed_at < $1`,
			`DELETE FROM mon_findings WHERE closed_at < $1`,
			`DELETE FROM mon_observations WHERE ended_at < $1`,
			`DELETE FROM mon_events WHERE at < $1`,
			`DELETE FROM mon_certs c WHERE first_seen < $1
				AND NOT EXISTS (SELECT 1 FROM mon_observations o WHERE o.fingerprint = c.fingerprint)
				AND NOT EXISTS (SELECT 1 FROM mon_observations o WHERE o.chain @> ARRAY[c.fingerprint])`,
			`DELETE FROM account_links WHERE revoked_at < $1`,
			`DELETE FROM discovered_certs d WHERE gone_at < $1 AND NOT EXISTS (SELECT 1 FROM mon_targets t
				JOIN mon_findings f ON f.target_id = t.id WHERE t.discovered_cert = d.id AND (f.closed_at IS NULL OR f.closed_at >= $1))`,
		} {
			tag, err := tx.Exec(ctx, q, cutoff)
			if err != nil {
				return err
			}
			deleted += tag.RowsAffected()
		}
		tag, err := tx.Exec(ctx, pruneAgentJobsSQL)
		deleted += tag.RowsAffected()
		return err
	})
	return deleted, classify(err)
}

// agentJobsKept is how long a job of an agent is kept once it is done or
// void (expired unfinished): long past its verdict, which its agent's
// result gets at once, and past any relay (which needs the job live).
const agentJobsKept = "1 day"

// pruneAgentJobsSQL deletes the jobs done or void longer than
// agentJobsKept ago, and so their relays (ON DELETE CASCADE); a job still
// open and live (taken, relaying, or waiting for an agent) is kept.
const pruneAgentJobsSQL = `DELETE FROM agent_jobs
	WHERE coalesce(done_at, expires_at) < now() - interval '` + agentJobsKept + `'`

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func nonNilBytes(s [][]byte) [][]byte { return nonNil(s) }
