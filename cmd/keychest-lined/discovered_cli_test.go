// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

func TestDiscoveredCLI(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO accounts (email, confirmed_at) VALUES ('owner@example.com', now())`,
		`INSERT INTO discovered (account_id, site, name, port, source, addresses)
		 SELECT id, 'office', 'ldap.corp.example', 636, 'axfr:corp.example', 2 FROM accounts`,
		`INSERT INTO discovered (account_id, site, name, port, source, addresses, gone_at)
		 SELECT id, 'office', 'old.corp.example', 443, 'axfr:corp.example', 1, now() FROM accounts`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	code, out, errOut := cli(t, url, "discovered")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[1], "ldap.corp.example:636") || !strings.HasSuffix(lines[1], "proposed") ||
		!strings.Contains(lines[1], "owner@example.com") || !strings.Contains(lines[1], "axfr:corp.example") || !strings.HasSuffix(lines[2], "gone") {
		t.Fatalf("discovered: %d %q %q", code, out, errOut)
	}
	code, out, _ = cli(t, url, "discovered", "--json")
	var rows []store.Discovered
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 2 || rows[0].Addresses != 2 || rows[1].Gone == nil {
		t.Fatalf("discovered --json: %d %q %v", code, out, err)
	}
}
