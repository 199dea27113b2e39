// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

// Mails sent before link tokens left the body lose their tokens when the
// schema is migrated; a pending one keeps its links (it still has to go).
func TestMigrationScrubsSentMail(t *testing.T) {
	url := pgtest.NewDatabaseAt(t, 2) // the outbox as it was first made
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	const token = "Ab3_-xYz0123456789abcdefghijklmnopqrstuvwxy"
	body := "Confirm:\n  https://k.example/confirm/" + token + "\nBlock:\n  https://k.example/block/" + token + "x\n"
	_, err = conn.Exec(ctx, `INSERT INTO outbox (kind, to_email, subject, body, sent_at)
		VALUES ('confirm', 'sent@example.com', 's', $1, now()), ('confirm', 'pending@example.com', 's', $1, NULL)`, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	var sent, pending string
	conn.QueryRow(ctx, `SELECT body FROM outbox WHERE to_email = 'sent@example.com'`).Scan(&sent)
	conn.QueryRow(ctx, `SELECT body FROM outbox WHERE to_email = 'pending@example.com'`).Scan(&pending)
	if strings.Contains(sent, token) || !strings.Contains(sent, "https://k.example/confirm/(used)") {
		t.Errorf("sent mail after the migration:\n%s", sent)
	}
	if pending != body {
		t.Errorf("pending mail changed:\n%s", pending)
	}
}
