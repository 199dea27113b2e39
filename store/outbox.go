package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mail is one queued mail.
type Mail struct {
	ID       int64
	Kind     string
	To       string
	Subject  string
	Body     string
	Attempts int
}

// Outbox is what the mail sender needs.
type Outbox interface {
	// SendNext takes the oldest mail that is due, calls send with it, and
	// records the outcome: sent, or failed and due again after backoff. It
	// reports false when no mail was due.
	SendNext(ctx context.Context, send func(Mail) error, backoff func(attempts int) time.Duration) (bool, error)
}

// SendNext holds the mail's row lock while send runs, so that servers
// sharing the database never send one mail twice; SKIP LOCKED lets them
// send different mails side by side.
func (p *Postgres) SendNext(ctx context.Context, send func(Mail) error, backoff func(int) time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
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
		err := tx.QueryRow(ctx, `SELECT id, kind, to_email, subject, body, link_tokens, attempts FROM outbox
			WHERE sent_at IS NULL AND failed_at IS NULL AND next_try_at <= now() ORDER BY next_try_at, id
			LIMIT 1 FOR UPDATE SKIP LOCKED`).Scan(&m.ID, &m.Kind, &m.To, &m.Subject, &m.Body, &tokens, &m.Attempts)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		m.Body = withTokens(m.Body, tokens)
		if sendErr := send(m); sendErr != nil {
			_, err = tx.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $2,
				next_try_at = clock_timestamp() + $3 * interval '1 millisecond' WHERE id = $1`,
				m.ID, sendErr.Error(), backoff(m.Attempts+1).Milliseconds())
			return err
		}
		// The mail is out: its tokens are no longer kept (the body has only
		// stand-ins), in the transaction that records it sent.
		_, err = tx.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, sent_at = clock_timestamp(), last_error = NULL,
			link_tokens = NULL WHERE id = $1`, m.ID)
		return err
	})
	return found, classify(err)
}
