// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/store"
)

// siteRow reads the monitor's row of the owner's target name:443 behind a
// site: its id, whether active, and how many findings and events it has.
func (w *agentWorld) siteRow(t *testing.T, name string) (id int64, active bool, findings, events int) {
	t.Helper()
	err := w.db.QueryRow(context.Background(), `SELECT m.id, m.active,
			(SELECT count(*) FROM mon_findings f WHERE f.target_id = m.id), (SELECT count(*) FROM mon_events e WHERE e.target_id = m.id)
		FROM mon_targets m JOIN agent_targets s ON s.id = m.site_target WHERE s.name = $1`, name).Scan(&id, &active, &findings, &events)
	if err != nil {
		t.Fatal(err)
	}
	return id, active, findings, events
}

// Removing a target behind a site keeps its history, as removing a public
// domain does: the target is gone from the key (list, status, cert,
// check, page, the cap, jobs) while its monitor's row, findings and
// events stay until the history's cutoff; adding it again takes the same
// history up. A stranger's key removes nothing of the owner's.
func TestRemovedSiteTargetKeepsItsHistory(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	owner := ref("owner-key-0123456789")
	if _, err := w.siteAdd("ldap.corp.example", 1); err != nil {
		t.Fatal(err)
	}
	w.openFinding(t, "expiry", "critical", `site_target = (SELECT id FROM agent_targets WHERE name = $2)`, "ldap.corp.example")
	id, _, _, _ := w.siteRow(t, "ldap.corp.example")
	if _, err := w.db.Exec(ctx, `INSERT INTO mon_events (target_id, at, kind, detail) VALUES ($1, now(), 'renewed', 'the test')`, id); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.p.RemoveSiteTarget(ctx, ref("stranger-key-0123456"), "ldap.corp.example", 443); ok || err != nil {
		t.Fatalf("a stranger removed: %v %v", ok, err)
	}
	if ok, err := w.p.RemoveSiteTarget(ctx, owner, "ldap.corp.example", 443); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if got, active, findings, events := w.siteRow(t, "ldap.corp.example"); got != id || active || findings != 1 || events != 1 {
		t.Fatalf("after the removal: row %d (was %d), active %v, %d findings, %d events", got, id, active, findings, events)
	}
	if ok, _ := w.p.RemoveSiteTarget(ctx, owner, "ldap.corp.example", 443); ok {
		t.Error("removed twice")
	}
	if _, err := w.p.SiteTargetStatus(ctx, owner, "ldap.corp.example", 443, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cert of a removed target: %v", err)
	}
	if ok, _ := w.p.CheckSiteTarget(ctx, owner, "ldap.corp.example", 443); ok {
		t.Error("check of a removed target")
	}
	if l, err := w.p.KeyDomains(ctx, owner); err != nil || len(l) != 0 {
		t.Errorf("list: %+v %v", l, err)
	}
	if s, err := w.p.KeyStatus(ctx, owner); err != nil || s.Domains != 0 || s.Problems != 0 {
		t.Errorf("status: %+v %v", s, err)
	}
	if v := w.pageOf(t, "owner@example.com"); len(v.Domains) != 0 {
		t.Errorf("page: %+v", v.Domains)
	}
	if n, err := w.p.QueueDueJobs(ctx, w.agent, time.Minute); err != nil || n != 0 {
		t.Errorf("jobs for a removed target: %d %v", n, err)
	}
	var audited int
	w.db.QueryRow(ctx, `SELECT count(*) FROM audit WHERE action = 'domain.remove' AND detail->>'site' = 'office'
		AND detail->>'domain' = 'ldap.corp.example' AND detail->>'added_at' IS NOT NULL`).Scan(&audited)
	if audited != 1 {
		t.Errorf("%d removals audited", audited)
	}
	// The removed target no longer counts toward the cap of 1.
	if _, err := w.siteAdd("other.corp.example", 1); err != nil {
		t.Fatalf("add past a removed target: %v", err)
	}
	if _, err := w.p.RemoveSiteTarget(ctx, owner, "other.corp.example", 443); err != nil {
		t.Fatal(err)
	}
	// Added again: the same row, with its history, watched and due now.
	if out, err := w.siteAdd("ldap.corp.example", 1); err != nil || out != store.DomainAdded {
		t.Fatalf("add again: %v %v", out, err)
	}
	if got, active, findings, events := w.siteRow(t, "ldap.corp.example"); got != id || !active || findings != 1 || events != 1 {
		t.Fatalf("added again: row %d (was %d), active %v, %d findings, %d events", got, id, active, findings, events)
	}
	if n, err := w.p.QueueDueJobs(ctx, w.agent, time.Minute); err != nil || n != 1 {
		t.Errorf("jobs once added again: %d %v", n, err)
	}
	// The history is kept until the cutoff, then goes with the target.
	if _, err := w.p.Housekeep(ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	var targets, rows int
	count := func() {
		w.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM agent_targets), (SELECT count(*) FROM mon_targets WHERE site_target IS NOT NULL)`).
			Scan(&targets, &rows)
	}
	if count(); targets != 2 || rows != 2 {
		t.Fatalf("before the cutoff: %d targets, %d rows", targets, rows)
	}
	if _, err := w.p.Housekeep(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if count(); targets != 1 || rows != 1 {
		t.Fatalf("past the cutoff: %d targets, %d rows; want the live one only", targets, rows)
	}
	if l, _ := w.p.KeyDomains(ctx, owner); len(l) != 1 || l[0].Name != "ldap.corp.example" {
		t.Errorf("list after housekeeping: %+v", l)
	}
}

// A job in flight when its target is removed gives it no verdict, and
// does not make the removed target due again.
func TestRemovedSiteTargetIgnoresJobInFlight(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	owner := ref("owner-key-0123456789")
	job := w.siteJob(t, "ldap.corp.example")
	if ok, err := w.p.RemoveSiteTarget(ctx, owner, "ldap.corp.example", 443); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if err := w.p.SetSiteTargetResult(ctx, job, store.SiteTargetResult{State: "ok", Next: time.Nanosecond}); err != nil {
		t.Fatal(err)
	}
	if leased, err := w.p.LeaseSiteJobs(ctx, []int64{job}, "test", time.Now(), time.Now().Add(time.Minute)); len(leased) > 0 || err != nil {
		t.Fatalf("the monitor's row leased for a removed target's job: %v %v", leased, err)
	}
	var state string
	w.db.QueryRow(ctx, `SELECT state FROM agent_targets`).Scan(&state)
	if n, err := w.p.QueueDueJobs(ctx, w.agent, time.Minute); err != nil || n != 0 || state != "pending" {
		t.Fatalf("after the job's result: %d jobs, state %s, %v", n, state, err)
	}
}

// auto_add does not add back a target the owner removed: it is proposed
// again, for the owner to accept or ignore.
func TestAutoAddLeavesRemovedTargetsProposed(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	if c, err := w.p.StoreDiscovered(ctx, batch(w, true, "y.corp.example")); err != nil || c.Added != 1 {
		t.Fatalf("auto_add: %+v %v", c, err)
	}
	if ok, err := w.p.RemoveSiteTarget(ctx, ref("owner-key-0123456789"), "y.corp.example", 443); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if c, err := w.p.StoreDiscovered(ctx, batch(w, true, "y.corp.example")); err != nil || c.Added != 0 || c.Left != 0 {
		t.Fatalf("auto_add after the removal: %+v %v", c, err)
	}
	if l, err := w.p.AccountDiscovered(ctx, ref("owner-key-0123456789")); err != nil || names(l) != "y.corp.example:443/office/1 " {
		t.Errorf("proposals: %q %v", names(l), err)
	}
}

// A job's verdict that waits on the target's row while a removal holds it
// lands on nothing once the removal commits: the removed target stays
// never due, and no job is queued for it again.
func TestVerdictRacingARemovalDoesNotReviveIt(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	job := w.siteJob(t, "race.corp.example")
	// Hold the job's row, so that the removal stops after it has locked
	// and changed the target's row, before it lets go of the job.
	holder, err := pgx.Connect(ctx, w.db.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM agent_jobs WHERE id = $1 FOR UPDATE`, job); err != nil {
		t.Fatal(err)
	}
	waiting := func(n int) func() bool {
		return func() bool {
			var got int
			w.db.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&got)
			return got >= n
		}
	}
	removed := make(chan error, 1)
	go func() {
		_, err := w.p.RemoveSiteTarget(ctx, ref("owner-key-0123456789"), "race.corp.example", 443)
		removed <- err
	}()
	waitFor(t, "the removal waiting on the job", waiting(1))
	verdict := make(chan error, 1)
	go func() {
		verdict <- w.p.SetSiteTargetResult(ctx, job, store.SiteTargetResult{State: "ok", Next: time.Nanosecond})
	}()
	waitFor(t, "the verdict waiting on the target", waiting(2))
	tx.Rollback(ctx)
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if err := <-verdict; err != nil {
		t.Fatal(err)
	}
	var never bool
	if err := w.db.QueryRow(ctx, `SELECT next_due = 'infinity' FROM agent_targets`).Scan(&never); err != nil || !never {
		t.Fatalf("the removed target is due again: %v", err)
	}
	if n, err := w.p.QueueDueJobs(ctx, w.agent, time.Minute); err != nil || n != 0 {
		t.Fatalf("%d jobs queued for a removed target: %v", n, err)
	}
}

// siteJob puts name:443 behind the owner's site and queues its one job.
func (w *agentWorld) siteJob(t *testing.T, name string) (job int64) {
	t.Helper()
	ctx := context.Background()
	if _, err := w.siteAdd(name, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := w.p.QueueDueJobs(ctx, w.agent, time.Minute); err != nil || n != 1 {
		t.Fatalf("queue: %d %v", n, err)
	}
	if err := w.db.QueryRow(ctx, `SELECT id FROM agent_jobs`).Scan(&job); err != nil {
		t.Fatal(err)
	}
	return job
}
