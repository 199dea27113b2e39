// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// subcommand is one of the operator's commands. It uses the same
// configuration (KEYCHEST_DATABASE_URL) as the server. Only "migrate"
// changes the schema; the others need it current and say so when it is not.
type subcommand struct {
	summary string
	needs   string // "email", "key-prefix" or ""
	run     func(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error
}

// migrateCommand is the name of the subcommand that applies migrations.
const migrateCommand = "migrate"

// cliArgs are the parsed flags of a subcommand.
type cliArgs struct {
	email, keyPrefix           string
	json, open, failed, dryRun bool
	agent                      string // agent-logs: the agent's id
}

var subcommands = map[string]subcommand{
	"accounts":     {"list every account", "", listAccounts},
	"domains":      {"list the domains of an account's keys", "email", listDomains},
	"keys":         {"list an account's keys (prefixes only)", "email", listKeys},
	"confirm":      {"confirm an account, and approve the keys that waited for it (not those claimed once it was confirmed: approve --key-prefix)", "email", setAccount("confirm")},
	"block":        {"block an account: its keys stop working", "email", setAccount("block")},
	"revoke":       {"revoke the key with this prefix", "key-prefix", revokeKey},
	"approve":      {"approve the key with this prefix, pending since its claim, as its mail's link does", "key-prefix", approveKey},
	"certs":        {"every watched target: state and days left, soonest expiry first (--email: one account's)", "", listCerts},
	"alerts":       {"recent alert mails and their outbox state (--email: one account's)", "", listAlerts},
	"digest":       {"print the weekly digest an account would get now (--dry-run: nothing is sent)", "email", printDigest},
	"rotate-links": {"revoke an account's page links: its next mail carries a fresh one", "email", rotateLinks},
	"findings":     {"the monitor's findings, newest first (--open: open ones only; --email: one account's)", "", listFindings},
	"mails":        {"list the outbox's mails: pending, sent, failed (--failed: only those)", "", listMails},
	"acme":         {"recent ACME activity per domain from keychest-amp: last order, status, last error (--email: one account's)", "", listACME},
	// migrate is run by runSubcommand itself: it needs no current schema.
	migrateCommand: {"apply the schema's migrations (the server does too, at start)", "", nil},
}

// runSubcommand parses flags, connects, runs. Exit codes: 0 done, 1 failed
// (a missing or older schema included), 2 bad arguments or configuration.
func runSubcommand(sub subcommand, args []string) int {
	return runCLI(sub, args, os.Stdout, os.Stderr)
}

// runCLI is runSubcommand writing to out and errOut.
func runCLI(sub subcommand, args []string, out, errOut io.Writer) int {
	var a cliArgs
	fs := flag.NewFlagSet("keychest-lined", flag.ContinueOnError)
	fs.StringVar(&a.email, "email", "", "the account's email")
	fs.StringVar(&a.keyPrefix, "key-prefix", "", "the start of an API key (4 to 8 characters)")
	fs.BoolVar(&a.json, "json", false, "print JSON instead of a table")
	fs.BoolVar(&a.open, "open", false, "findings: only the open ones")
	fs.BoolVar(&a.dryRun, "dry-run", false, "digest: print it, send nothing")
	fs.BoolVar(&a.failed, "failed", false, "mails: only those failed for good")
	fs.StringVar(&a.agent, "agent", "", "agent-logs: the agent's id")
	fs.SetOutput(errOut)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := a.check(sub.needs, fs.NArg()); err != nil {
		fmt.Fprintln(errOut, "keychest-lined:", err)
		return 2
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(errOut, "keychest-lined:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if sub.run == nil {
		return migrateSchema(ctx, cfg.DatabaseURL, a, out, errOut)
	}
	if err := store.CheckSchema(ctx, cfg.DatabaseURL); err != nil {
		fmt.Fprintln(errOut, "keychest-lined:", explain(err, a))
		return 1
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		fmt.Fprintln(errOut, "keychest-lined:", err)
		return 2
	}
	defer db.Close()
	if err := sub.run(ctx, db, a, out); err != nil {
		fmt.Fprintln(errOut, "keychest-lined:", explain(err, a))
		return 1
	}
	return 0
}

// migrateSchema is "keychest-lined migrate": it applies what migrations
// are missing and prints the schema's version.
func migrateSchema(ctx context.Context, databaseURL string, a cliArgs, out, errOut io.Writer) int {
	v, err := store.Migrate(ctx, databaseURL)
	if err != nil {
		fmt.Fprintln(errOut, "keychest-lined:", err)
		return 1
	}
	if a.json {
		orJSON(out, map[string]int32{"schema_version": v}, nil)
		return 0
	}
	fmt.Fprintf(out, "schema at version %d\n", v)
	return 0
}

// check validates the flags a subcommand needs, normalising the email.
func (a *cliArgs) check(needs string, extra int) error {
	if extra > 0 {
		return errors.New("unexpected arguments; flags are --email, --key-prefix, --open, --failed and --json")
	}
	switch needs {
	case "email":
		email, perr := names.ParseEmail(a.email)
		if a.email == "" {
			return errors.New("--email is required")
		}
		if perr != nil {
			return fmt.Errorf("--email: %s", perr)
		}
		a.email = email
	case "key-prefix":
		p := a.keyPrefix
		if len(p) < 4 || len(p) > names.PrefixLen || !names.KeyChars(p) {
			return errors.New("--key-prefix needs 4 to 8 characters of the key's start")
		}
	}
	return nil
}

func explain(err error, a cliArgs) string {
	switch {
	case errors.Is(err, store.ErrNotFound) && a.keyPrefix != "":
		return "no key starts with " + a.keyPrefix
	case errors.Is(err, store.ErrNotFound):
		return "no account for " + a.email
	case errors.Is(err, store.ErrNoSchema):
		return "the database has no keychest-lined schema (is KEYCHEST_DATABASE_URL the right database?); " +
			"'keychest-lined migrate' creates it"
	case errors.Is(err, store.ErrOldSchema):
		return err.Error() + "; run 'keychest-lined migrate' first"
	case errors.Is(err, store.ErrAmbiguousPrefix):
		return "more than one key starts with " + a.keyPrefix + "; give more characters"
	}
	return err.Error()
}

func listAccounts(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	rows, err := db.Accounts(ctx)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	return table(out, "EMAIL\tSTATUS\tKEYS\tDOMAINS\tCREATED", len(rows), func(i int) string {
		r := rows[i]
		return fmt.Sprintf("%s\t%s\t%d\t%d\t%s", r.Email, accountStatus(r), r.Keys, r.Domains, day(r.CreatedAt))
	})
}

func listDomains(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	rows, err := db.AccountDomains(ctx, a.email)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	return table(out, "DOMAIN\tPORT\tSTATUS\tKEY\tADDED", len(rows), func(i int) string {
		r := rows[i]
		status := "pending"
		if r.Active {
			status = "active"
		}
		return fmt.Sprintf("%s\t%d\t%s\t%s...\t%s", r.Name, r.Port, status, r.KeyPrefix, day(r.CreatedAt))
	})
}

func listKeys(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	rows, err := db.AccountKeys(ctx, a.email)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	return table(out, "KEY\tORIGIN\tSTATUS\tDOMAINS\tCREATED\tFROM", len(rows), func(i int) string {
		r := rows[i]
		status := "active"
		switch {
		case r.RevokedAt != nil:
			status = "revoked"
		case r.PendingAt != nil:
			status = "pending"
		}
		return fmt.Sprintf("%s...\t%s\t%s\t%d\t%s\t%s", r.Prefix, r.Origin, status, r.Domains, day(r.CreatedAt), r.CreatedIP)
	})
}

func listMails(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	rows, err := db.Mails(ctx, a.failed)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	return table(out, "ID\tKIND\tTO\tSTATUS\tATTEMPTS\tQUEUED\tLAST ERROR", len(rows), func(i int) string {
		r := rows[i]
		return fmt.Sprintf("%d\t%s\t%s\t%s\t%d\t%s\t%s", r.ID, r.Kind, r.To, r.Status, r.Attempts, day(r.CreatedAt), orNone(r.LastError))
	})
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func setAccount(action string) func(context.Context, operatorStore, cliArgs, io.Writer) error {
	return func(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
		if err := db.SetAccount(ctx, a.email, action); err != nil {
			return err
		}
		done := map[string]string{"confirm": "confirmed", "block": "blocked"}[action]
		if a.json {
			return orJSON(out, map[string]string{"email": a.email, "status": done}, nil)
		}
		_, err := fmt.Fprintf(out, "%s %s\n", done, a.email)
		return err
	}
}

func revokeKey(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	k, err := db.RevokeKey(ctx, a.keyPrefix)
	if err != nil || a.json {
		return orJSON(out, k, err)
	}
	_, err = fmt.Fprintf(out, "revoked key %s... (%d domains)\n", k.Prefix, k.Domains)
	return err
}

func approveKey(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	k, err := db.ApproveKey(ctx, a.keyPrefix)
	if err != nil || a.json {
		return orJSON(out, k, err)
	}
	if k.RevokedAt != nil {
		_, err = fmt.Fprintf(out, "key %s... is revoked; approving it changes nothing\n", k.Prefix)
		return err
	}
	_, err = fmt.Fprintf(out, "approved key %s... (%d domains)\n", k.Prefix, k.Domains)
	return err
}

func accountStatus(a store.Account) string {
	switch {
	case a.BlockedAt != nil:
		return "blocked"
	case a.ConfirmedAt != nil:
		return "confirmed"
	}
	return "dormant"
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") }

// orJSON prints v as JSON unless err is set.
func orJSON(out io.Writer, v any, err error) error {
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints a header and n rows aligned in columns.
func table(out io.Writer, header string, n int, row func(int) string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for i := 0; i < n; i++ {
		fmt.Fprintln(tw, row(i))
	}
	return tw.Flush()
}
