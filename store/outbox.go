// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// Mail is one queued mail.
type Mail struct {
	ID       int64
	Kind     string
	To       string
	Subject  string
	Body     string
	Attempts int           // tries so far
	Age      time.Duration // since it was queued, by the database's clock
	// For the mails written when they are sent (all but claim mails queued
	// before migration 011): the raw link tokens by name, and what the mail
	// reports. The composer fills in Subject, Body and ListUnsubscribe.
	Tokens          map[string]string
	Claim           *ClaimMail          // confirm, new_key: the claim's facts
	Items           []finding.AlertItem // alert: the findings, in the order they came
	Digest          *Digest             // digest: the account's week
	ListUnsubscribe string              // the List-Unsubscribe link, if any
}

// Attempt is what became of one try at a mail.
type Attempt struct {
	Err     error         // nil: the mail was sent
	Failed  bool          // with Err: give up, never try again
	RetryIn time.Duration // with Err and not Failed: when to try again
}

// SendNext takes the oldest mail that is due, calls send with it, and
// records what send reports: sent, failed for good, or due again later
// (mailer.Outbox). It reports false when no mail was due.
// It holds the mail's row lock while send runs, so that servers
// sharing the database never send one mail twice; SKIP LOCKED lets them
// send different mails side by side. A mail sent or failed for good loses
// its link tokens in the transaction that records it.
func (p *Postgres) SendNext(ctx context.Context, send func(Mail) Attempt) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	// A due alert batch stops gathering before it is sent, in a statement
	// of its own: the row lock held across a slow SMTP exchange then never
	// holds up a monitor adding the account's next finding (that opens a
	// new batch).
	if _, err := p.pool.Exec(ctx, `UPDATE outbox SET dedup_key = NULL
		WHERE kind = 'alert' AND dedup_key IS NOT NULL AND sent_at IS NULL AND failed_at IS NULL AND next_try_at <= now()`); err != nil {
		return false, classify(err)
	}
	// Once a mail is handed to SMTP its outcome must be recorded even if
	// ctx ends meanwhile (a shutdown): the transaction runs on its own.
	txCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	ctx = txCtx
	found := false
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		var m Mail
		var tokens map[string]string
		var account *int64
		err := tx.QueryRow(ctx, `SELECT id, kind, to_email, subject, body, link_tokens, attempts, clock_timestamp() - created_at,
				account_id, claim
			FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL AND next_try_at <= now() ORDER BY next_try_at, id
			LIMIT 1 FOR UPDATE SKIP LOCKED`).Scan(&m.ID, &m.Kind, &m.To, &m.Subject, &m.Body, &tokens, &m.Attempts, &m.Age,
			&account, &m.Claim)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		m.Body, m.Tokens = withTokens(m.Body, tokens), tokens
		if err := loadContent(ctx, tx, &m, account); err != nil {
			return err
		}
		if why, err := unwanted(ctx, tx, m, account); err != nil || why != "" {
			if err != nil {
				return err
			}
			return record(ctx, tx, m.ID, Attempt{Err: errors.New("not sent: " + why), Failed: true})
		}
		return record(ctx, tx, m.ID, send(m))
	})
	return found, classify(err)
}

// closeBatch frees an alert batch's dedup key once it is sent or failed:
// the next alert of the account opens a new batch. A digest keeps its key
// (one a week).
const closeBatch = `dedup_key = CASE WHEN dedup_key LIKE 'alert:%:open' THEN NULL ELSE dedup_key END`

// loadContent reads what an alert or digest mail reports, in the
// transaction that sends it.
func loadContent(ctx context.Context, tx pgx.Tx, m *Mail, account *int64) error {
	switch {
	case m.Kind == "alert":
		rows, err := tx.Query(ctx, `SELECT target, kind, change, severity, detail, since, at FROM alert_items
			WHERE outbox_id = $1 ORDER BY id`, m.ID)
		if err != nil {
			return err
		}
		m.Items, err = pgx.CollectRows(rows, pgx.RowToStructByPos[finding.AlertItem])
		return err
	case m.Kind == "digest" && account != nil:
		d, err := digestOf(ctx, tx, *account, m.Age)
		m.Digest = &d
		return err
	}
	return nil
}

// unwanted says why an alert or digest queued earlier is no longer to be
// sent, or "": the account was blocked or turned it off meanwhile, or a
// digest has no domain left to report.
func unwanted(ctx context.Context, tx pgx.Tx, m Mail, account *int64) (string, error) {
	if account == nil || (m.Kind != "alert" && m.Kind != "digest") {
		return "", nil
	}
	var blocked, alertsOff, digestOff bool
	err := tx.QueryRow(ctx, `SELECT blocked_at IS NOT NULL, alerts_off_at IS NOT NULL, digest_off_at IS NOT NULL
		FROM accounts WHERE id = $1`, *account).Scan(&blocked, &alertsOff, &digestOff)
	switch {
	case err != nil:
		return "", err
	case blocked:
		return "the account is blocked", nil
	case m.Kind == "alert" && alertsOff:
		return "the owner turned alerts off", nil
	case m.Kind == "digest" && digestOff:
		return "the owner turned the digest off", nil
	case m.Kind == "digest" && m.Digest != nil && len(m.Digest.Domains) == 0:
		return "the account has no domains left", nil
	}
	return "", nil
}

// record writes an attempt's outcome. A mail sent, or failed for good, no
// longer needs its link tokens: they go (its row holds no other secret).
func record(ctx context.Context, tx pgx.Tx, id int64, a Attempt) error {
	var err error
	switch {
	case a.Err == nil:
		_, err = tx.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, sent_at = clock_timestamp(),
			last_error = NULL, link_tokens = NULL, `+closeBatch+` WHERE id = $1`, id)
	case a.Failed:
		_, err = tx.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, failed_at = clock_timestamp(),
			last_error = $2, link_tokens = NULL, `+closeBatch+` WHERE id = $1`, id, a.Err.Error())
	default:
		_, err = tx.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $2,
			next_try_at = clock_timestamp() + $3 * interval '1 millisecond' WHERE id = $1`,
			id, a.Err.Error(), a.RetryIn.Milliseconds())
	}
	return err
}
