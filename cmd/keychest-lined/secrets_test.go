// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/internal/smtptest"
	"github.com/keychest/keychest-lined/mailer"
)

// connect opens a connection to databaseURL for the test's length.
func connect(t *testing.T, databaseURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// tokensIn returns the tokens of the links in a mail body.
func tokensIn(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for _, l := range mailer.Links(body) {
		out = append(out, l[strings.LastIndex(l, "/")+1:])
	}
	if len(out) == 0 {
		t.Fatalf("no links in:\n%s", body)
	}
	return out
}

// findText lists the columns, as table.column, of every table whose
// text contains s: every column of every table, whatever its type (text,
// json, arrays, addresses...), read as text.
func findText(t *testing.T, databaseURL, s string) []string {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, databaseURL)
	rows, err := conn.Query(ctx, `SELECT c.table_name, c.column_name FROM information_schema.columns c
		JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	columns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var c [2]string
		return c, r.Scan(&c[0], &c[1])
	})
	if err != nil || len(columns) == 0 {
		t.Fatalf("columns: %v, %v", columns, err)
	}
	var found []string
	for _, c := range columns {
		var n int
		sql := "SELECT count(*) FROM " + pgx.Identifier{c[0]}.Sanitize() +
			" WHERE position($1 in " + pgx.Identifier{c[1]}.Sanitize() + "::text) > 0"
		if err := conn.QueryRow(ctx, sql, s).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if n > 0 {
			found = append(found, c[0]+"."+c[1])
		}
	}
	return found
}

// waitOutbox waits until every outbox row meets cond (SQL), for 10 s.
func waitOutbox(t *testing.T, databaseURL, cond string) {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, databaseURL)
	for deadline := time.Now().Add(10 * time.Second); ; {
		var pending int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE NOT (`+cond+`)`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outbox rows still not %s", pending, cond)
		}
		time.Sleep(20 * time.Millisecond) // the sender records on its own schedule
	}
}

// Once a mail is sent, no table holds its raw link tokens: only hashes.
func TestNoTokenAfterSend(t *testing.T) {
	mail := smtptest.Start(t)
	a := startApp(t, withSMTP(mail))
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email secret@example.com", "status ok 200 claimed for")
	confirmMail := mail.Wait(t, 1, 10*time.Second)[0]
	waitOutbox(t, a.cfg.DatabaseURL, "sent_at IS NOT NULL")
	if code, _ := post(t, link(t, confirmMail.Body(), "confirm")); code != 200 {
		t.Fatalf("confirm: %d", code)
	}
	second := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+second+" email secret@example.com", "status ok 200 claimed for")
	newKeyMail := mail.Wait(t, 2, 10*time.Second)[1]
	waitOutbox(t, a.cfg.DatabaseURL, "sent_at IS NOT NULL")

	if found := findText(t, a.cfg.DatabaseURL, "secret@example.com"); len(found) == 0 {
		t.Fatal("the search finds nothing, not even the email")
	}
	if found := findText(t, a.cfg.DatabaseURL, second[:8]); !slices.Contains(found, "outbox.claim") {
		t.Fatalf("the search does not reach the mails' facts: key prefix found in %v", found)
	}
	tokens := append(tokensIn(t, confirmMail.Body()), tokensIn(t, newKeyMail.Body())...)
	if len(tokens) != 4 {
		t.Fatalf("tokens %v, want confirm, block, approve and revoke", tokens)
	}
	for _, tok := range tokens {
		if found := findText(t, a.cfg.DatabaseURL, tok); len(found) > 0 {
			t.Errorf("raw token %.8s... stored in %v", tok, found)
		}
	}
}
