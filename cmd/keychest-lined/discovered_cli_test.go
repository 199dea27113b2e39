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

func TestDiscoveredCertsCLI(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO accounts (email, confirmed_at) VALUES ('owner@example.com', now())`,
		`INSERT INTO discovered_certs (account_id, site, source, dn, attribute, fingerprint, subject, issuer, not_before, not_after)
		 SELECT id, 'office', 'ldap:ldap://x dc=x', 'cn=soon,dc=x', 'userCertificate', '\x` + strings.Repeat("aa", 32) + `',
		        'soon.corp.example', 'Corp CA', now() - interval '360 days', now() + interval '5 days 1 hour' FROM accounts`,
		`INSERT INTO discovered_certs (account_id, site, source, dn, attribute, fingerprint, subject, issuer, not_before, not_after)
		 SELECT id, 'office', 'ldap:ldap://x dc=x', 'cn=later,dc=x', 'cACertificate', '\x` + strings.Repeat("bb", 32) + `',
		        'Corp CA', 'Corp CA', now() - interval '1 day', now() + interval '3650 days' FROM accounts`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	code, out, errOut := cli(t, url, "discovered-certs")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[1], "cn=soon,dc=x") || !strings.HasSuffix(strings.Join(strings.Fields(lines[1]), " "), " 5 critical") ||
		!strings.HasSuffix(lines[2], " ok") {
		t.Fatalf("discovered-certs: %d %q %q", code, out, errOut)
	}
	code, out, _ = cli(t, url, "discovered-certs", "--json")
	var rows []store.DiscoveredCert
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 2 || rows[0].DN != "cn=soon,dc=x" {
		t.Fatalf("discovered-certs --json: %d %q %v", code, out, err)
	}
}
