// SPDX-License-Identifier: Apache-2.0

package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/names"
)

// LinkLifetime is how long the links an alert or digest mail carries
// (account page, unsubscribe) work.
const LinkLifetime = 365 * 24 * time.Hour

// ownersSQL finds the accounts to tell about a target: confirmed, not
// blocked, alerts on, with an active domain naming it (a public target),
// or with the target behind one of its sites, or owning the agent (an
// agent's row), or owning the certificate (a row of a certificate read
// from an LDAP store); only account $2 when it is not 0 (an ACME finding is its
// account's alone).
const ownersSQL = `
SELECT a.id, a.email
FROM (SELECT d.api_key_id FROM mon_targets t JOIN domains d ON d.name = t.name AND d.port = t.port WHERE t.id = $1 AND t.public
      UNION ALL
      SELECT s.api_key_id FROM mon_targets t JOIN agent_targets s ON s.id = t.site_target WHERE t.id = $1 AND t.active) o
JOIN api_keys k ON k.id = o.api_key_id JOIN accounts a ON a.id = k.account_id
WHERE ` + activeDomain + ` AND a.alerts_off_at IS NULL AND ($2::bigint = 0 OR a.id = $2)
UNION
SELECT a.id, a.email
FROM mon_targets t JOIN agents g ON g.id = t.agent JOIN accounts a ON a.id = g.account_id
WHERE t.id = $1 AND a.confirmed_at IS NOT NULL AND a.blocked_at IS NULL AND a.alerts_off_at IS NULL
UNION
SELECT a.id, a.email
FROM mon_targets t JOIN discovered_certs d ON d.id = t.discovered_cert JOIN accounts a ON a.id = d.account_id
WHERE t.id = $1 AND a.confirmed_at IS NOT NULL AND a.blocked_at IS NULL AND a.alerts_off_at IS NULL`

// queueAlerts writes, in the write-back's transaction, the alert items
// verdicts call for: a finding opened, risen above what was last mailed,
// or closed after it was mailed. Each goes into the open alert batch of
// every owner (one outbox row per account, due batch after it opened).
// The batches are taken in the order of their account, so that two
// monitors writing for the same accounts never wait for each other in a
// circle.
func queueAlerts(ctx context.Context, tx pgx.Tx, vs []finding.Verdict, batch time.Duration) error {
	var work []ownedItem
	for _, v := range vs {
		items, err := alertItems(ctx, tx, v)
		if err != nil {
			return err
		}
		work = append(work, items...)
	}
	slices.SortStableFunc(work, func(a, b ownedItem) int { return cmp.Compare(a.owner.ID, b.owner.ID) })
	for _, w := range work {
		if err := addToBatch(ctx, tx, w.owner, w.item, w.at, batch); err != nil {
			return err
		}
	}
	return nil
}

// ownedItem is an alert item for one owner.
type ownedItem struct {
	owner owner
	item  finding.AlertItem
	at    time.Time
}

// alertItems lists the items one verdict calls for, per owner.
func alertItems(ctx context.Context, tx pgx.Tx, v finding.Verdict) ([]ownedItem, error) {
	changes := finding.Changes(v)
	if len(changes) == 0 {
		return nil, nil
	}
	var target string
	if err := tx.QueryRow(ctx, `SELECT CASE WHEN agent IS NOT NULL THEN 'agent ' || name
		WHEN discovered_cert IS NOT NULL THEN $2::text || name ELSE name || ':' || port END
		FROM mon_targets WHERE id = $1`, v.TargetID, finding.LDAPLabel).Scan(&target); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, ownersSQL, v.TargetID, v.Account)
	if err != nil {
		return nil, err
	}
	owners, err := pgx.CollectRows(rows, pgx.RowToStructByPos[owner])
	if err != nil || len(owners) == 0 {
		return nil, err
	}
	var out []ownedItem
	for _, c := range changes {
		item, mail, err := findingItem(ctx, tx, v, c, target)
		if err != nil {
			return nil, err
		}
		for _, o := range owners {
			if mail {
				out = append(out, ownedItem{owner: o, item: item, at: v.CheckedAt})
			}
		}
	}
	return out, nil
}

// owner is an account an alert goes to.
type owner struct {
	ID    int64
	Email string
}

// findingItem reads the finding a change is about and asks
// finding.Mailed whether it is mailed. It records what is mailed.
func findingItem(ctx context.Context, tx pgx.Tx, v finding.Verdict, c finding.Change, target string) (finding.AlertItem, bool, error) {
	item := finding.AlertItem{Target: target, Kind: c.Kind, Change: c.How, At: v.CheckedAt}
	var id int64
	var mailed string
	err := tx.QueryRow(ctx, `SELECT id, severity, detail, opened_at, coalesce(mailed_severity, '') FROM mon_findings
		WHERE target_id = $1 AND kind = $2 AND account_id IS NOT DISTINCT FROM nullif($3::bigint, 0)
		ORDER BY closed_at IS NULL DESC, id DESC LIMIT 1`,
		v.TargetID, c.Kind, v.Account).Scan(&id, &item.Severity, &item.Detail, &item.Since, &mailed)
	if errors.Is(err, pgx.ErrNoRows) {
		return item, false, nil
	}
	if err != nil {
		return item, false, err
	}
	var mail bool
	if item.Change, mail = finding.Mailed(c.How, item.Severity, mailed); !mail {
		return item, false, nil
	}
	_, err = tx.Exec(ctx, `UPDATE mon_findings SET mailed_severity = severity WHERE id = $1`, id)
	return item, true, err
}

// addToBatch puts an item into the account's open alert batch, opening
// one (due batch from now, with fresh links) if there is none. The batch
// is found by its dedup key, so two monitors, or a restart, never open a
// second one; a batch being sent has given its key up already.
func addToBatch(ctx context.Context, tx pgx.Tx, o owner, item finding.AlertItem, now time.Time, batch time.Duration) error {
	key := fmt.Sprintf("alert:%d:open", o.ID)
	var id int64
	for id == 0 {
		err := tx.QueryRow(ctx, `SELECT id FROM outbox WHERE dedup_key = $1 FOR UPDATE`, key).Scan(&id)
		if err == nil {
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if id, err = openBatch(ctx, tx, o, key, now.Add(batch)); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO alert_items (outbox_id, target, kind, change, severity, detail, since, at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, item.Target, item.Kind, item.Change, item.Severity,
		item.Detail, item.Since, item.At)
	return err
}

// openBatch inserts an account's alert batch with its links: an account
// page link and an "unsubscribe from alerts" link, raw in link_tokens
// until the mail is sent, hashed in their tables. It returns 0 when a
// racing transaction opened one first.
func openBatch(ctx context.Context, tx pgx.Tx, o owner, key string, due time.Time) (int64, error) {
	return queueLinkedMail(ctx, tx, o, "alert", key, due, "alerts_off")
}

// queueLinkedMail inserts a mail for an account, unless one with its
// dedup key exists, with fresh account-page and unsubscribe links.
func queueLinkedMail(ctx context.Context, tx pgx.Tx, o owner, kind, key string, due time.Time, unsubscribe string) (int64, error) {
	page, unsub := names.NewToken(), names.NewToken()
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO outbox (kind, to_email, subject, body, account_id, dedup_key, next_try_at, link_tokens)
		VALUES ($1, $2, '', '', $3, $4, $5, $6) ON CONFLICT (dedup_key) DO NOTHING RETURNING id`,
		kind, o.Email, o.ID, key, due, map[string]string{"account": page, unsubscribe: unsub}).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pageHash, unsubHash := HashToken(page), HashToken(unsub)
	if _, err := tx.Exec(ctx, `INSERT INTO account_links (hash, account_id) VALUES ($1, $2)`, pageHash[:], o.ID); err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO tokens (hash, action, account_id, expires_at) VALUES ($1, $2, $3, now() + $4::interval)`,
		unsubHash[:], unsubscribe, o.ID, LinkLifetime)
	return id, err
}

// AlertMail is one alert mail as the operator sees it.
type AlertMail struct {
	ID        int64      `json:"id"`
	To        string     `json:"to"`
	Status    string     `json:"status"` // gathering, pending, sent or failed
	Items     int        `json:"items"`
	Kinds     []string   `json:"kinds"`
	CreatedAt time.Time  `json:"created_at"`
	Due       time.Time  `json:"due"`
	SentAt    *time.Time `json:"sent_at"`
	LastError string     `json:"last_error"`
}

// AlertMails lists the latest 200 alert mails, newest first, of every
// account or of one.
func (p *Postgres) AlertMails(ctx context.Context, email string) ([]AlertMail, error) {
	rows, err := p.pool.Query(ctx, `SELECT o.id, o.to_email,
			CASE WHEN o.sent_at IS NOT NULL THEN 'sent' WHEN o.failed_at IS NOT NULL THEN 'failed'
			     WHEN o.dedup_key IS NOT NULL AND o.next_try_at > now() THEN 'gathering' ELSE 'pending' END,
			count(i.id), coalesce(array_agg(DISTINCT i.kind) FILTER (WHERE i.kind IS NOT NULL), '{}'),
			o.created_at, o.next_try_at, o.sent_at, coalesce(o.last_error, '')
		FROM outbox o LEFT JOIN alert_items i ON i.outbox_id = o.id
		WHERE o.kind = 'alert' AND ($1 = '' OR o.to_email = $1)
		GROUP BY o.id ORDER BY o.created_at DESC, o.id DESC LIMIT 200`, email)
	if err != nil {
		return nil, classify(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AlertMail])
	return out, classify(err)
}
