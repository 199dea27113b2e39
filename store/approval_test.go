// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

// approvalWorld is an owner with a confirmed account and one active
// domain, a second confirmed account watching a name of its own, and a
// page link of the owner's account.
type approvalWorld struct {
	p    *store.Postgres
	db   *pgx.Conn
	page string // raw token of the owner's account page
}

func newApprovalWorld(t *testing.T) *approvalWorld {
	t.Helper()
	p, url := open(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(ctx) })
	w := &approvalWorld{p: p, db: db, page: "owner-page-token"}
	for _, o := range []struct{ key, email, name string }{
		{"owner-key-0123456789", "owner@example.com", "owner.example"},
		{"other-key-0123456789", "other@example.com", "shared.example"},
	} {
		tokens := claimWithTokens(t, p, o.key, o.email)
		if _, err := p.UseToken(ctx, "confirm", tokens.Confirm, ip); err != nil {
			t.Fatal(err)
		}
		if res, err := w.add(o.key, o.name); err != nil || !res.Active {
			t.Fatalf("owner's add of %s: %+v %v", o.name, res, err)
		}
	}
	hash := store.HashToken(w.page)
	w.exec(t, `INSERT INTO account_links (hash, account_id) SELECT $1, id FROM accounts WHERE email = 'owner@example.com'`, hash[:])
	if _, err := p.SyncTargets(ctx, time.Time{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *approvalWorld) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := w.db.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (w *approvalWorld) add(key, name string) (store.AddResult, error) {
	return w.p.AddDomain(context.Background(), store.NewDomain{Key: ref(key), Name: name, Port: 443, IP: ip, MaxPerKey: 100})
}

// seen lists every place where the owner's account shows a name: its
// page, its digest (domains and changes), the monitor's targets (what
// alerts are about), and the owners an alert on each target would go to.
func (w *approvalWorld) seen(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	view, err := w.p.AccountPage(ctx, w.page)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range view.Domains {
		fmt.Fprintf(&b, "page %s %s; ", d.Name, d.State)
	}
	digest, err := w.p.DigestFor(ctx, "owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range digest.Domains {
		fmt.Fprintf(&b, "digest %s; ", d.Name)
	}
	for _, c := range digest.Changes {
		fmt.Fprintf(&b, "change %s %s; ", c.What, c.Target)
	}
	rows, _ := w.db.Query(ctx, `SELECT name FROM mon_targets WHERE active ORDER BY name`)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "targets %s", strings.Join(names, ","))
	return b.String()
}

// A stranger's key claimed onto a confirmed account waits for the owner:
// its names appear in none of the account's pages, digests, targets or
// alerts until approved; looking at the approve link changes nothing,
// using it approves, and the names then appear.
func TestKeyOnConfirmedAccountWaitsForApproval(t *testing.T) {
	w := newApprovalWorld(t)
	ctx := context.Background()
	before := w.seen(t)
	since := time.Now().Add(-time.Second)

	tokens := claimWithTokens(t, w.p, "stranger-key-0123456789", "owner@example.com")
	for _, name := range []string{"phish.example", "shared.example"} {
		if res, err := w.add("stranger-key-0123456789", name); err != nil || res.Active || res.Outcome != store.DomainAdded {
			t.Fatalf("stranger's add of %s: %+v %v (want added, pending)", name, res, err)
		}
	}
	if _, err := w.p.SyncTargets(ctx, since, time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := w.seen(t); got != before {
		t.Fatalf("a pending key's names show:\nbefore: %s\nafter:  %s", before, got)
	}
	st, err := w.p.KeyStatus(ctx, ref("stranger-key-0123456789"))
	if err != nil || st.Confirmed {
		t.Fatalf("pending key's status: %+v %v", st, err)
	}
	if _, err := w.p.CertStatus(ctx, ref("stranger-key-0123456789"), "shared.example", 443); err != nil {
		t.Fatal(err)
	}
	if err := w.p.RequestCheck(ctx, ref("stranger-key-0123456789"), "shared.example", 443, time.Now(), time.Minute); !errors.Is(err, store.ErrPending) {
		t.Fatalf("check by a pending key: %v, want ErrPending", err)
	}

	// The approve page's look-up (the GET) changes nothing.
	info, err := w.p.LookupToken(ctx, "approve", tokens.Approve)
	if err != nil || info.KeyPrefix != "stranger" || info.KeyDomains != 2 || info.Email != "owner@example.com" {
		t.Fatalf("lookup: %+v %v", info, err)
	}
	if got := w.seen(t); got != before {
		t.Fatalf("looking at the approve link changed what shows: %s", got)
	}
	if _, err := w.p.UseToken(ctx, "approve", tokens.Approve, ip); err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.SyncTargets(ctx, since, time.Now()); err != nil {
		t.Fatal(err)
	}
	after := w.seen(t)
	for _, want := range []string{"page phish.example", "change added phish.example:443", "targets owner.example,phish.example,shared.example"} {
		if !strings.Contains(after, want) {
			t.Errorf("approved key: %q lacks %q", after, want)
		}
	}
	if st, _ := w.p.KeyStatus(ctx, ref("stranger-key-0123456789")); !st.Confirmed {
		t.Fatalf("approved key's status: %+v", st)
	}
	if _, err := w.p.UseToken(ctx, "approve", tokens.Approve, ip); !errors.Is(err, store.ErrTokenUsed) {
		t.Fatalf("second use: %v", err)
	}
}

// The operator approves a pending key by its prefix; the revoke link of a
// pending key's mail still revokes it.
func TestApproveKeyByPrefixAndRevokeLink(t *testing.T) {
	w := newApprovalWorld(t)
	ctx := context.Background()
	before := w.seen(t)
	claimWithTokens(t, w.p, "approve-me-0123456789", "owner@example.com")
	if _, err := w.add("approve-me-0123456789", "cli.example"); err != nil {
		t.Fatal(err)
	}
	keys, err := w.p.AccountKeys(ctx, "owner@example.com")
	if err != nil || len(keys) != 2 || keys[0].PendingAt != nil || keys[1].PendingAt == nil {
		t.Fatalf("keys: %+v %v", keys, err)
	}
	k, err := w.p.ApproveKey(ctx, "approve-")
	if err != nil || k.Prefix != "approve-" || k.PendingAt != nil || k.Domains != 1 {
		t.Fatalf("approve: %+v %v", k, err)
	}
	if res, err := w.add("approve-me-0123456789", "cli.example"); err != nil || !res.Active {
		t.Fatalf("approved key's add: %+v %v", res, err)
	}
	if _, err := w.p.ApproveKey(ctx, "nokey"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown prefix: %v", err)
	}
	var audited int
	if err := w.db.QueryRow(ctx, `SELECT count(*) FROM audit WHERE action = 'key.approve' AND key_prefix = 'approve-'
		AND detail->>'by' = 'cli'`).Scan(&audited); err != nil || audited != 1 {
		t.Fatalf("%d approve audit rows, %v", audited, err)
	}

	tokens := claimWithTokens(t, w.p, "revoke-me-0123456789", "owner@example.com")
	if _, err := w.add("revoke-me-0123456789", "gone.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.UseToken(ctx, "revoke", tokens.Revoke, ip); err != nil {
		t.Fatal(err)
	}
	if _, err := w.add("revoke-me-0123456789", "more.example"); !errors.Is(err, store.ErrKeyRevoked) {
		t.Fatalf("revoked key's add: %v", err)
	}
	// Approving it afterwards brings nothing back.
	if _, err := w.p.UseToken(ctx, "approve", tokens.Approve, ip); err != nil {
		t.Fatal(err)
	}
	if got := w.seen(t); strings.Contains(got, "gone.example") || !strings.Contains(got, "cli.example") {
		t.Fatalf("before %s\nafter %s", before, got)
	}
}

// pageNames lists the names on the account page of email (through a page
// link made for the test) and the monitor's active targets.
func (w *approvalWorld) pageNames(t *testing.T, email string) string {
	t.Helper()
	ctx := context.Background()
	raw := "page-of-" + email
	hash := store.HashToken(raw)
	w.exec(t, `INSERT INTO account_links (hash, account_id) SELECT $1, id FROM accounts WHERE email = $2
		ON CONFLICT DO NOTHING`, hash[:], email)
	if _, err := w.p.SyncTargets(ctx, time.Time{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	view, err := w.p.AccountPage(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range view.Domains {
		names = append(names, d.Name)
	}
	rows, _ := w.db.Query(ctx, `SELECT name FROM mon_targets WHERE active ORDER BY name`)
	targets, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return "page " + strings.Join(names, ",") + "; targets " + strings.Join(targets, ",")
}

// A stranger who claims first, creating the owner's account unconfirmed,
// gains nothing when the owner later confirms the account from the mail
// about the owner's own key: a confirm link approves only its key. The
// stranger's key waits for the link of its own mail; the operator's
// confirm approves every key.
func TestConfirmLinkApprovesOnlyItsKey(t *testing.T) {
	w := newApprovalWorld(t)
	ctx := context.Background()
	strangers := claimWithTokens(t, w.p, "early-stranger-0123456789", "late@example.com")
	if _, err := w.add("early-stranger-0123456789", "phish.example"); err != nil {
		t.Fatal(err)
	}
	owners := claimWithTokens(t, w.p, "late-owner-0123456789", "late@example.com")
	if _, err := w.add("late-owner-0123456789", "real.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.UseToken(ctx, "confirm", owners.Confirm, ip); err != nil {
		t.Fatal(err)
	}
	if got, want := w.pageNames(t, "late@example.com"), "page real.example; targets owner.example,real.example,shared.example"; got != want {
		t.Fatalf("after the owner's confirm: %s, want %s", got, want)
	}
	if st, _ := w.p.KeyStatus(ctx, ref("early-stranger-0123456789")); st.Confirmed {
		t.Fatal("the stranger's key reads confirmed")
	}
	if _, err := w.p.UseToken(ctx, "confirm", strangers.Confirm, ip); err != nil {
		t.Fatal(err)
	}
	if got := w.pageNames(t, "late@example.com"); !strings.Contains(got, "page phish.example,real.example") {
		t.Fatalf("the stranger's own confirm link did not approve it: %s", got)
	}

	claimWithTokens(t, w.p, "cli-key-0123456789", "cli@example.com")
	if _, err := w.add("cli-key-0123456789", "cli.example"); err != nil {
		t.Fatal(err)
	}
	if err := w.p.SetAccount(ctx, "cli@example.com", "confirm"); err != nil {
		t.Fatal(err)
	}
	if got := w.pageNames(t, "cli@example.com"); got != "page cli.example; targets cli.example,owner.example,phish.example,real.example,shared.example" {
		t.Fatalf("after the operator's confirm: %s", got)
	}
}

// Migration 013: the keys of unconfirmed accounts wait for their own
// confirm link (which names them); those of confirmed accounts stay
// active.
func TestMigrationMarksKeysOfUnconfirmedAccountsPending(t *testing.T) {
	url := pgtest.NewDatabaseAt(t, 11)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, k := range []struct {
		key, email string
		confirmed  bool
	}{{"dormant-key-0123456789", "dormant@example.com", false}, {"active-key-0123456789", "active@example.com", true}} {
		hash, token := ref(k.key).Hash, store.HashToken(k.key+"-confirm")
		if _, err := conn.Exec(ctx, `WITH a AS (INSERT INTO accounts (email, confirmed_at) VALUES ($1, CASE WHEN $2 THEN now() END) RETURNING id),
			key AS (INSERT INTO api_keys (key_hash, key_prefix, origin, account_id, claimed_at)
				SELECT $3, $4, 'client', id, now() FROM a RETURNING id, account_id)
			INSERT INTO tokens (hash, action, account_id, api_key_id, expires_at)
			SELECT $5, 'confirm', account_id, id, now() + interval '1 day' FROM key`,
			k.email, k.confirmed, hash[:], k.key[:8], token[:]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	p, err := store.Open(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	res, err := p.AddDomain(ctx, store.NewDomain{Key: ref("active-key-0123456789"), Name: "a.example", Port: 443, MaxPerKey: 9})
	if err != nil || !res.Active {
		t.Fatalf("key of a confirmed account: %+v %v", res, err)
	}
	// Confirmed some other way, the account still does not vouch for the key.
	if _, err := conn.Exec(ctx, `UPDATE accounts SET confirmed_at = now()`); err != nil {
		t.Fatal(err)
	}
	res, err = p.AddDomain(ctx, store.NewDomain{Key: ref("dormant-key-0123456789"), Name: "d.example", Port: 443, MaxPerKey: 9})
	if err != nil || res.Active {
		t.Fatalf("key of a formerly dormant account, before its link: %+v %v", res, err)
	}
	if _, err := p.UseToken(ctx, "confirm", "dormant-key-0123456789-confirm", ip); err != nil {
		t.Fatal(err)
	}
	res, err = p.AddDomain(ctx, store.NewDomain{Key: ref("dormant-key-0123456789"), Name: "d.example", Port: 443, MaxPerKey: 9})
	if err != nil || !res.Active {
		t.Fatalf("key of a dormant account, confirmed by its old link: %+v %v", res, err)
	}
}

// The operator's confirm of an account that is confirmed already approves
// no key claimed onto it since (an operator helping its owner must not
// activate a stranger's key); on an account not yet confirmed, it approves
// the keys that waited for it (review).
func TestOperatorConfirmApprovesOnlyKeysThatWaitedForIt(t *testing.T) {
	w := newApprovalWorld(t)
	ctx := context.Background()
	claimWithTokens(t, w.p, "stranger-key-0123456789", "owner@example.com")
	if err := w.p.SetAccount(ctx, "owner@example.com", "confirm"); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.p.KeyStatus(ctx, ref("stranger-key-0123456789")); st.Confirmed {
		t.Fatal("confirm --email of a confirmed account approved a key claimed onto it")
	}
	claimWithTokens(t, w.p, "newcomer-key-0123456789", "new@example.com")
	if err := w.p.SetAccount(ctx, "new@example.com", "confirm"); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.p.KeyStatus(ctx, ref("newcomer-key-0123456789")); !st.Confirmed {
		t.Fatal("confirm --email of a new account left its key waiting")
	}
}
