// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/keychest/keychest-lined/internal/pgtest"
)

// cli runs an operator command against databaseURL and returns its exit
// code, standard output and standard error.
func cli(t *testing.T, databaseURL string, args ...string) (int, string, string) {
	t.Helper()
	t.Setenv("KEYCHEST_DATABASE_URL", databaseURL)
	sub, ok := subcommands[args[0]]
	if !ok {
		t.Fatalf("no subcommand %q", args[0])
	}
	var out, errOut bytes.Buffer
	code := runCLI(sub, args[1:], &out, &errOut)
	return code, out.String(), errOut.String()
}

// schemaOf lists the tables of a database and its schema version (-1: none).
func schemaOf(t *testing.T, databaseURL string) (tables int, version int32) {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, databaseURL)
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	version = -1
	conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&version)
	return tables, version
}

// readCommands are every operator command but migrate, with the flags it
// needs.
var readCommands = [][]string{
	{"accounts"}, {"accounts", "--json"}, {"domains", "--email", "a@example.com"}, {"keys", "--email", "a@example.com"},
	{"confirm", "--email", "a@example.com"}, {"block", "--email", "a@example.com"}, {"revoke", "--key-prefix", "abcd1234"}, {"approve", "--key-prefix", "abcd1234"},
	{"mails"}, {"mails", "--failed", "--json"}, {"certs"}, {"findings", "--open"}, {"alerts"},
	{"digest", "--email", "a@example.com", "--dry-run"}, {"rotate-links", "--email", "a@example.com"},
}

// Operator commands never change the schema: against an empty database
// they say there is none and fail, leaving it empty.
func TestCLIOnEmptyDatabase(t *testing.T) {
	url := pgtest.NewEmptyDatabase(t)
	for _, args := range readCommands {
		code, out, errOut := cli(t, url, args...)
		if code == 0 || out != "" || !strings.Contains(errOut, "no keychest-lined schema") ||
			!strings.Contains(errOut, "keychest-lined migrate") {
			t.Errorf("%v: exit %d, out %q, err %q", args, code, out, errOut)
		}
	}
	if tables, version := schemaOf(t, url); tables != 0 || version != -1 {
		t.Fatalf("the commands left %d tables, schema version %d", tables, version)
	}
	code, out, errOut := cli(t, url, "migrate")
	if code != 0 || !strings.HasPrefix(out, "schema at version ") {
		t.Fatalf("migrate: exit %d, out %q, err %q", code, out, errOut)
	}
	if code, out, errOut := cli(t, url, "accounts"); code != 0 || !strings.HasPrefix(out, "EMAIL") {
		t.Fatalf("accounts after migrate: exit %d, out %q, err %q", code, out, errOut)
	}
}

// Against a schema older than the binary's they say so and change nothing.
func TestCLIOnOlderSchema(t *testing.T) {
	url := pgtest.NewDatabaseAt(t, 1)
	tablesBefore, _ := schemaOf(t, url)
	for _, args := range readCommands {
		code, out, errOut := cli(t, url, args...)
		if code == 0 || out != "" || !strings.Contains(errOut, "at version 1, this one needs") ||
			!strings.Contains(errOut, "run 'keychest-lined migrate' first") {
			t.Errorf("%v: exit %d, out %q, err %q", args, code, out, errOut)
		}
	}
	if tables, version := schemaOf(t, url); tables != tablesBefore || version != 1 {
		t.Fatalf("the commands changed the schema: %d tables (was %d), version %d", tables, tablesBefore, version)
	}
}
