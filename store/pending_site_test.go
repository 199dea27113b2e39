// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// A key claimed onto the owner's confirmed account waits for the owner's
// approval, and until then is a stranger's: auto_add never adds through
// it (even when it is the account's only key left), and it can neither
// read, check, list nor remove the account's targets behind sites, even
// one attached to it.
func TestPendingKeyGetsNoSiteTargets(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	intruder := ref("intruder-key-0123456")
	claimWithTokens(t, w.p, "intruder-key-0123456", "owner@example.com")
	if _, err := w.db.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE key_prefix = $1`, ref("owner-key-0123456789").Prefix); err != nil {
		t.Fatal(err)
	}
	c, err := w.p.StoreDiscovered(ctx, batch(w, true, "ldap.corp.example", "db.corp.example"))
	if err != nil || c.Added != 0 {
		t.Fatalf("auto_add through a key waiting for approval: %+v %v", c, err)
	}
	var n int
	w.db.QueryRow(ctx, `SELECT count(*) FROM agent_targets`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d targets added", n)
	}
	// A target of the account attached to the waiting key (as auto_add
	// did) is not the key's to see or touch.
	if _, err := w.db.Exec(ctx, `INSERT INTO agent_targets (account_id, api_key_id, site, name, port)
		SELECT k.account_id, k.id, 'office', 'ldap.corp.example', 443 FROM api_keys k WHERE k.key_hash = $1`, intruder.Hash[:]); err != nil {
		t.Fatal(err)
	}
	if s, err := w.p.SiteTargetStatus(ctx, intruder, "ldap.corp.example", 443, time.Hour); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("cert by a waiting key: %+v %v", s, err)
	}
	if ok, err := w.p.CheckSiteTarget(ctx, intruder, "ldap.corp.example", 443); ok || err != nil {
		t.Errorf("check by a waiting key: %v %v", ok, err)
	}
	if l, err := w.p.KeyDomains(ctx, intruder); err != nil || len(l) != 0 {
		t.Errorf("list by a waiting key: %+v %v", l, err)
	}
	if ok, err := w.p.RemoveSiteTarget(ctx, intruder, "ldap.corp.example", 443); ok || err != nil {
		t.Errorf("removal by a waiting key: %v %v", ok, err)
	}
	// Once the owner approves it, the key is the account's.
	if _, err := w.db.Exec(ctx, `UPDATE api_keys SET pending_at = NULL WHERE key_hash = $1`, intruder.Hash[:]); err != nil {
		t.Fatal(err)
	}
	if ok, err := w.p.CheckSiteTarget(ctx, intruder, "ldap.corp.example", 443); !ok || err != nil {
		t.Errorf("check by the approved key: %v %v", ok, err)
	}
}
