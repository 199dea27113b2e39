// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"testing"
	"time"
)

// Housekeeping deletes account-page links revoked before the cutoff, and
// keeps the live ones and those revoked since.
func TestHousekeepPrunesRevokedLinks(t *testing.T) {
	p, url := open(t)
	db := pool(t, url)
	ctx := context.Background()
	if _, err := db.Exec(ctx, `INSERT INTO accounts (email) VALUES ('links@example.com');
		INSERT INTO account_links (hash, account_id, revoked_at)
		SELECT sha256(n::bytea), (SELECT id FROM accounts), r
		FROM (VALUES ('live', NULL::timestamptz), ('old', now() - interval '500 days'),
			('recent', now() - interval '1 day')) v(n, r)`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Housekeep(ctx, time.Now().Add(-400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, err := db.Query(ctx, `SELECT CASE WHEN revoked_at IS NULL THEN 'live'
		WHEN revoked_at > now() - interval '2 days' THEN 'recent' ELSE 'old' END
		FROM account_links ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		left = append(left, s)
	}
	if len(left) != 2 || left[0] != "live" || left[1] != "recent" {
		t.Fatalf("links left: %v, want [live recent]", left)
	}
}

// Housekeeping deletes agents' jobs a day after they were done or void
// (expired unfinished), with their relays, whatever the history's
// cutoff; it keeps the open live ones (and their relays), and the ones
// done or void since.
func TestHousekeepPrunesOldAgentJobs(t *testing.T) {
	p, url := open(t)
	db := pool(t, url)
	ctx := context.Background()
	if _, err := db.Exec(ctx, `INSERT INTO accounts (email) VALUES ('jobs@example.com');
		INSERT INTO agent_jobs (account_id, site, name, port, expires_at, done_at, taken_at, token_hash)
		SELECT (SELECT id FROM accounts), 'office', n, 443, e, d, t, CASE WHEN t IS NOT NULL THEN sha256(n::bytea) END
		FROM (VALUES ('done-old', now() - interval '2 days', now() - interval '2 days', now() - interval '2 days'),
			('done-recent', now(), now() - interval '1 hour', now() - interval '1 hour'),
			('open-live', now() + interval '1 minute', NULL, now()),
			('waiting', now() + interval '1 minute', NULL, NULL),
			('void-old', now() - interval '25 hours', NULL, now() - interval '2 days'),
			('void-recent', now() - interval '1 hour', NULL, now() - interval '2 hours')) v(n, e, d, t);
		INSERT INTO agent_job_relays (job_id, address) SELECT id, '10.0.0.1' FROM agent_jobs`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Housekeep(ctx, time.Now().Add(-400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var jobs, relays string
	err := db.QueryRow(ctx, `SELECT (SELECT string_agg(name, ' ' ORDER BY name) FROM agent_jobs),
		(SELECT string_agg(j.name, ' ' ORDER BY j.name) FROM agent_job_relays r JOIN agent_jobs j ON j.id = r.job_id),
		(SELECT count(*) FROM agent_job_relays)`).Scan(&jobs, &relays, new(int))
	if err != nil {
		t.Fatal(err)
	}
	const want = "done-recent open-live void-recent waiting"
	if jobs != want || relays != want {
		t.Fatalf("jobs left: %q, relays of: %q; want %q", jobs, relays, want)
	}
	var orphans int
	db.QueryRow(ctx, `SELECT count(*) FROM agent_job_relays r WHERE NOT EXISTS (SELECT 1 FROM agent_jobs j WHERE j.id = r.job_id)`).Scan(&orphans)
	if orphans != 0 {
		t.Fatalf("%d relays of deleted jobs", orphans)
	}
}
