// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/acme"
	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/words"
)

// findingWriter opens, changes and closes the ACME findings of one
// account, outside the monitor, queueing their alert items (to that
// account only) as the monitor's write-back does.
type findingWriter struct {
	tx      pgx.Tx
	now     time.Time
	batch   time.Duration
	account int64 // whose findings these are
	changes []ACMEChange
}

// heldSQL keeps, in order, those of the names $2 that a domain of account
// $1 names through a key that works and is approved (a wildcard by its
// name without "*."): a key still pending approval holds nothing yet.
const heldSQL = `
SELECT n.name FROM unnest($2::text[]) WITH ORDINALITY AS n(name, idx)
WHERE EXISTS (SELECT 1 FROM domains d JOIN api_keys k ON k.id = d.api_key_id
              WHERE k.account_id = $1 AND k.revoked_at IS NULL AND ` + keyApproved + `
                AND (d.name = n.name OR d.name = '*.' || n.name))
ORDER BY n.idx`

// held keeps those of names that the writer's account holds: its events
// touch no other account's names.
func (fw *findingWriter) held(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := fw.tx.Query(ctx, heldSQL, fw.account, names)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// openAll opens (or updates) f on every name's target that the account
// holds.
func (fw *findingWriter) openAll(ctx context.Context, names []string, f finding.Finding) error {
	names, err := fw.held(ctx, names)
	if err != nil {
		return err
	}
	for _, name := range names {
		id, err := ensureTarget(ctx, fw.tx, name)
		if err != nil {
			return err
		}
		if err := fw.open(ctx, id, name, f); err != nil {
			return err
		}
	}
	return nil
}

// open opens f on a target, or changes the open one when its severity or
// detail differ, and queues the alert this calls for.
func (fw *findingWriter) open(ctx context.Context, targetID int64, name string, f finding.Finding) error {
	v := finding.Verdict{TargetID: targetID, CheckedAt: fw.now, Account: fw.account}
	f.Detail = words.Clean(f.Detail, acme.MaxDetail)
	var sev, detail string
	err := fw.tx.QueryRow(ctx, `SELECT severity, detail FROM mon_findings
		WHERE target_id = $1 AND kind = $2 AND account_id = $3 AND closed_at IS NULL FOR UPDATE`,
		targetID, f.Kind, fw.account).Scan(&sev, &detail)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		tag, err := fw.tx.Exec(ctx, `INSERT INTO mon_findings (target_id, kind, severity, detail, opened_at, raised_at, account_id)
			VALUES ($1, $2, $3, $4, $5, $5, $6)
			ON CONFLICT (target_id, kind, account_id) WHERE closed_at IS NULL AND account_id IS NOT NULL DO NOTHING`,
			targetID, f.Kind, f.Severity, f.Detail, fw.now, fw.account)
		if err != nil || tag.RowsAffected() == 0 {
			return err // 0 rows: a concurrent transaction opened it
		}
		v.Open = []finding.Finding{f}
	case err != nil:
		return err
	case sev == f.Severity && detail == f.Detail:
		return nil
	default:
		_, err := fw.tx.Exec(ctx, `UPDATE mon_findings SET detail = $3,
				raised_at = CASE WHEN `+finding.RankSQL("$4")+` > `+finding.RankSQL("severity")+` THEN $5 ELSE raised_at END,
				severity = $4
			WHERE target_id = $1 AND kind = $2 AND account_id = $6 AND closed_at IS NULL`,
			targetID, f.Kind, f.Detail, f.Severity, fw.now, fw.account)
		if err != nil {
			return err
		}
		v.Change = []finding.Finding{f}
	}
	change := finding.Opened
	if v.Change != nil {
		change = "changed"
	}
	fw.changes = append(fw.changes, ACMEChange{Target: targetName(name), Kind: f.Kind, Change: change, Severity: f.Severity, Detail: f.Detail})
	return queueAlerts(ctx, fw.tx, []finding.Verdict{v}, fw.batch)
}

// closeAll closes the account's open findings of kinds on the target of
// every name it holds.
func (fw *findingWriter) closeAll(ctx context.Context, names []string, kinds []string, why string) error {
	names, err := fw.held(ctx, names)
	if err != nil {
		return err
	}
	for _, name := range names {
		var id int64
		err := fw.tx.QueryRow(ctx, `SELECT id FROM mon_targets WHERE public AND name = $1 AND port = $2`, name, acme.Port).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fw.close(ctx, id, name, kinds, why); err != nil {
			return err
		}
	}
	return nil
}

// close closes the account's open findings of kinds on a target and
// queues the "resolved" items of those that were mailed.
func (fw *findingWriter) close(ctx context.Context, targetID int64, name string, kinds []string, why string) error {
	rows, err := fw.tx.Query(ctx, `UPDATE mon_findings SET closed_at = $3, last_seen_at = $3
		WHERE target_id = $1 AND kind = ANY($2) AND account_id = $4 AND closed_at IS NULL RETURNING kind`,
		targetID, kinds, fw.now, fw.account)
	if err != nil {
		return err
	}
	closed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(closed) == 0 {
		return err
	}
	for _, k := range closed {
		fw.changes = append(fw.changes, ACMEChange{Target: targetName(name), Kind: k, Change: "closed", Detail: why})
	}
	return queueAlerts(ctx, fw.tx, []finding.Verdict{{TargetID: targetID, CheckedAt: fw.now, Close: closed, Account: fw.account}}, fw.batch)
}

// ensureTarget returns the id of a name's target on port 443, creating
// it as "command check" does when it is missing; the monitor probes it
// once an active domain names it.
func ensureTarget(ctx context.Context, tx pgx.Tx, name string) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO mon_targets (name, port) VALUES ($1, $2)
		ON CONFLICT (name, port) WHERE public DO NOTHING RETURNING id`, name, acme.Port).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) { // it exists: read it without locking the monitor out of it
		err = tx.QueryRow(ctx, `SELECT id FROM mon_targets WHERE public AND name = $1 AND port = $2`, name, acme.Port).Scan(&id)
	}
	return id, err
}

func targetName(name string) string { return name + ":" + strconv.Itoa(acme.Port) }
