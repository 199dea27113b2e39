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
