// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/store"
)

// heldRow locks the rows lock selects (a SELECT ... FOR UPDATE) in a
// transaction of its own, and returns a look at how many lock requests
// wait, and the release of the rows.
func (w *agentWorld) heldRow(t *testing.T, lock string) (waiting func() int, release func()) {
	t.Helper()
	ctx := context.Background()
	holder, err := pgx.Connect(ctx, w.db.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close(ctx) })
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, lock); err != nil {
		t.Fatal(err)
	}
	waiting = func() int {
		var n int
		w.db.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&n)
		return n
	}
	return waiting, func() { tx.Rollback(ctx) }
}

// siteTargetDue tells whether the owner's target name behind a site is
// listed, and due by now (an agent would be given a job for it).
func (w *agentWorld) siteTargetDue(t *testing.T, name string) (listed, due bool) {
	t.Helper()
	l, err := w.p.KeyDomains(context.Background(), ref("owner-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range l {
		listed = listed || d.Name == name
	}
	w.db.QueryRow(context.Background(), `SELECT next_due <= now() FROM agent_targets WHERE name = $1`, name).Scan(&due)
	return listed, due
}

// An add of a target racing its removal: the removal holds the key's
// lock as adds do, so the add that comes after it adds the target anew
// (due), rather than keeping as held one that the removal made never due.
// The target's row is held while the removal, then the add, queue for it.
func TestSiteAddAfterRacingRemovalIsDue(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	if _, err := w.siteAdd("ldap.corp.example", 0); err != nil {
		t.Fatal(err)
	}
	waiting, release := w.heldRow(t, `SELECT 1 FROM agent_targets WHERE name = 'ldap.corp.example' FOR UPDATE`)
	removed := make(chan error, 1)
	go func() {
		ok, err := w.p.RemoveSiteTarget(ctx, ref("owner-key-0123456789"), "ldap.corp.example", 443)
		if err == nil && !ok {
			t.Error("nothing removed")
		}
		removed <- err
	}()
	waitFor(t, "the removal waiting", func() bool { return waiting() == 1 })
	added := make(chan store.AddOutcome, 1)
	go func() {
		out, err := w.siteAdd("ldap.corp.example", 0)
		if err != nil {
			t.Error(err)
		}
		added <- out
	}()
	waitFor(t, "the add waiting too", func() bool { return waiting() == 2 })
	release()
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if out := <-added; out != store.DomainAdded {
		t.Errorf("the add after the removal: %v, want added", out)
	}
	if listed, due := w.siteTargetDue(t, "ldap.corp.example"); !listed || !due {
		t.Errorf("after the add: listed %v, due %v", listed, due)
	}
	if n, err := w.p.QueueDueJobs(ctx, w.agent, time.Minute); err != nil || n != 1 {
		t.Errorf("jobs: %d %v", n, err)
	}
}

// Housekeeping racing an add of a target removed long ago: the add that
// committed while Housekeep waited for the target's row keeps it, with
// its history. The monitor's row is held, so that the add waits on it
// holding the target's row, and Housekeep, started then, waits for that.
func TestHousekeepKeepsSiteTargetAddedAgain(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	if _, err := w.siteAdd("ldap.corp.example", 0); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.p.RemoveSiteTarget(ctx, ref("owner-key-0123456789"), "ldap.corp.example", 443); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if _, err := w.db.Exec(ctx, `UPDATE mon_targets SET removed_at = now() - interval '2 hours' WHERE site_target IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	id, _, _, _ := w.siteRow(t, "ldap.corp.example")
	waiting, release := w.heldRow(t, `SELECT 1 FROM mon_targets WHERE site_target IS NOT NULL FOR UPDATE`)
	added := make(chan error, 1)
	go func() {
		_, err := w.siteAdd("ldap.corp.example", 0)
		added <- err
	}()
	waitFor(t, "the add waiting", func() bool { return waiting() == 1 })
	kept := make(chan error, 1)
	go func() {
		_, err := w.p.Housekeep(ctx, time.Now().Add(-time.Hour))
		kept <- err
	}()
	waitFor(t, "housekeeping waiting too", func() bool { return waiting() == 2 })
	release()
	for _, ch := range []chan error{added, kept} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	w.db.QueryRow(ctx, `SELECT count(*) FROM mon_targets WHERE id = $1 AND active`, id).Scan(&n)
	if listed, due := w.siteTargetDue(t, "ldap.corp.example"); !listed || !due || n != 1 {
		t.Errorf("after the add and housekeeping: listed %v, due %v, its history's row kept %v", listed, due, n == 1)
	}
}
