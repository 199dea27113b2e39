// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// ldapCert is a certificate as the service stores it from an LDAP store,
// expiring in days.
func ldapCert(dn string, fp byte, days int) store.DiscoveredCert {
	now := time.Now().UTC().Truncate(time.Second)
	return store.DiscoveredCert{DN: dn, Attribute: "userCertificate", Fingerprint: bytes32(fp), Subject: dn, Issuer: "Corp CA",
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Duration(days) * 24 * time.Hour)}
}

// openFinding opens a finding of kind on the monitor's row that where
// picks (the row's state follows, as the judge writes it).
func (w *agentWorld) openFinding(t *testing.T, kind, severity, where string, args ...any) {
	t.Helper()
	ctx := context.Background()
	var id int64
	if err := w.db.QueryRow(ctx, `UPDATE mon_targets SET state = $1, last_checked_at = now() WHERE `+where+` RETURNING id`,
		append([]any{stateOf(severity)}, args...)...).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Exec(ctx, `INSERT INTO mon_findings (target_id, kind, severity, detail, opened_at, raised_at)
		VALUES ($1, $2, $3, 'seen by the test', now(), now())`, id, kind, severity); err != nil {
		t.Fatal(err)
	}
}

// stateOf is the target state a finding's severity gives.
func stateOf(severity string) string {
	if severity == "warning" {
		return "warning"
	}
	return "critical"
}

// The account page shows the certificates the account's agents read from
// LDAP stores, soonest expiry first, with their open finding; a stranger's
// page shows none of them.
func TestAccountPageShowsOwnLDAPCertsOnly(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	b := store.CertBatch{AgentKey: w.agent, Source: "ldap:ldap://127.0.0.1 dc=corp",
		Certs: []store.DiscoveredCert{ldapCert("cn=later,dc=corp", 1, 200), ldapCert("cn=soon,dc=corp", 2, 5)}}
	if _, err := w.p.StoreDiscoveredCerts(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := w.p.LeaseLDAPCerts(ctx, "test", time.Now(), time.Now(), 0); err != nil { // makes the rows, leases none
		t.Fatal(err)
	}
	w.openFinding(t, "expiry", "critical", `discovered_cert = (SELECT id FROM discovered_certs WHERE dn = $2)`, "cn=soon,dc=corp")
	stranger := w.claimedAgent(t, "agt-s-0123456789abc", "lab", "stranger@example.com")
	if _, err := w.p.StoreDiscoveredCerts(ctx, store.CertBatch{AgentKey: stranger, Source: "ldap:ldap://127.0.0.2 dc=other",
		Certs: []store.DiscoveredCert{ldapCert("cn=theirs,dc=other", 3, 30)}}); err != nil {
		t.Fatal(err)
	}
	v := w.pageOf(t, "owner@example.com")
	if len(v.LDAPCerts) != 2 || v.LDAPCertsTotal != 2 {
		t.Fatalf("owner's page: %+v", v.LDAPCerts)
	}
	if c := v.LDAPCerts[0]; c.DN != "cn=soon,dc=corp" || c.Site != "office" || c.State != "critical" || c.Finding != "expiry" ||
		c.Severity != "critical" || c.Issuer != "Corp CA" {
		t.Errorf("soonest: %+v", c)
	}
	if c := v.LDAPCerts[1]; c.DN != "cn=later,dc=corp" || c.Finding != "" || c.State != "unknown" {
		t.Errorf("later: %+v", c)
	}
	if d, err := w.p.DigestFor(ctx, "owner@example.com"); err != nil || d.LDAPCertProblems != 1 || d.LDAPCertsTotal != 2 {
		t.Errorf("owner's digest counts %d of %d certificates with a problem: %v", d.LDAPCertProblems, d.LDAPCertsTotal, err)
	}
	s := w.pageOf(t, "stranger@example.com")
	if len(s.LDAPCerts) != 1 || s.LDAPCerts[0].DN != "cn=theirs,dc=other" || s.LDAPCertsTotal != 1 {
		t.Errorf("stranger's page: %+v", s.LDAPCerts)
	}
}

// An agent with an open agent_silent finding is on its account's page
// and digest (not a stranger's), and "cert" of a target behind its site
// counts it (not a stranger's agent of a site of the same name).
func TestSilentAgentOnPageAndCert(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	owner := ref("owner-key-0123456789")
	if _, err := w.siteAdd("ldap.corp.example", 0); err != nil {
		t.Fatal(err)
	}
	w.claimedAgent(t, "agt-s-0123456789abc", "office", "stranger@example.com")
	if _, err := w.p.LeaseAgents(ctx, "test", time.Now(), time.Now(), time.Hour, 0); err != nil { // makes the rows
		t.Fatal(err)
	}
	// A stranger's agent of a site of the same name is no agent of the owner's.
	w.openFinding(t, "agent_silent", "warning", `agent = (SELECT id FROM agents WHERE agent_id = $2)`, "agt-s-0123456789abc@agents.test")
	s, err := w.p.SiteTargetStatus(ctx, owner, "ldap.corp.example", 443, time.Hour)
	if err != nil || s.SilentAgents != 0 {
		t.Fatalf("before: %+v %v", s, err)
	}
	w.openFinding(t, "agent_silent", "warning", `agent = (SELECT id FROM agents WHERE agent_id = $2)`, "agent-x@agents.test")
	s, err = w.p.SiteTargetStatus(ctx, owner, "ldap.corp.example", 443, time.Hour)
	if err != nil || s.SilentAgents != 1 || s.Site != "office" {
		t.Fatalf("after: %+v %v", s, err)
	}
	v := w.pageOf(t, "owner@example.com")
	if len(v.SilentAgents) != 1 || v.SilentAgents[0].ID != "agent-x@agents.test" || v.SilentAgents[0].Site != "office" ||
		v.SilentAgents[0].Host != "ldap-gw.corp.example" || v.SilentAgents[0].Severity != "warning" {
		t.Errorf("owner's page: %+v", v.SilentAgents)
	}
	if v := w.pageOf(t, "stranger@example.com"); len(v.SilentAgents) != 1 || v.SilentAgents[0].ID != "agt-s-0123456789abc@agents.test" {
		t.Errorf("stranger's page shows %+v", v.SilentAgents)
	}
	d, err := w.p.DigestFor(ctx, "owner@example.com")
	if err != nil || len(d.SilentAgents) != 1 {
		t.Errorf("owner's digest: %+v %v", d.SilentAgents, err)
	}
}

// digestsQueued lists the e-mail addresses the week's digests went to.
func (w *agentWorld) digestsQueued(t *testing.T) []string {
	t.Helper()
	now := time.Now()
	if _, err := w.p.QueueDigests(context.Background(), now, now.Weekday(), 0); err != nil {
		t.Fatal(err)
	}
	rows, err := w.db.Query(context.Background(), `SELECT a.email FROM outbox o JOIN accounts a ON a.id = o.account_id
		WHERE o.dedup_key LIKE 'digest:%' ORDER BY a.email`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		rows.Scan(&e)
		out = append(out, e)
	}
	return out
}

// An account whose only names are behind sites gets the weekly digest,
// and so does one with only proposals, or only certificates from LDAP
// stores; one with none of these gets none.
func TestDigestGoesToAccountsWithoutPublicDomains(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	if got := w.digestsQueued(t); len(got) != 0 {
		t.Fatalf("digests before anything is watched: %v", got)
	}
	if _, err := w.siteAdd("ldap.corp.example", 0); err != nil {
		t.Fatal(err)
	}
	stranger := w.claimedAgent(t, "agt-s-0123456789abc", "lab", "stranger@example.com")
	if _, err := w.p.StoreDiscoveredCerts(ctx, store.CertBatch{AgentKey: stranger, Source: "ldap:ldap://127.0.0.2 dc=other",
		Certs: []store.DiscoveredCert{ldapCert("cn=theirs,dc=other", 3, 30)}}); err != nil {
		t.Fatal(err)
	}
	if got := w.digestsQueued(t); len(got) != 2 || got[0] != "owner@example.com" || got[1] != "stranger@example.com" {
		t.Fatalf("digests: %v", got)
	}
	d, err := w.p.DigestFor(ctx, "stranger@example.com")
	if err != nil || d.LDAPCertsTotal != 1 || len(d.LDAPCerts) != 1 || d.LDAPCerts[0].DN != "cn=theirs,dc=other" {
		t.Errorf("stranger's digest: %+v %v", d, err)
	}
	if d, err := w.p.DigestFor(ctx, "owner@example.com"); err != nil || len(d.Domains) != 1 || d.Domains[0].Name != "ldap.corp.example" ||
		len(d.LDAPCerts) != 0 {
		t.Errorf("owner's digest: %+v %v", d, err)
	}
}

// An account whose only news is its agents' proposals gets the digest
// (which counts them).
func TestDigestGoesToAccountsWithOnlyProposals(t *testing.T) {
	w := claimedWorld(t)
	if _, err := w.p.StoreDiscovered(context.Background(), batch(w, false, "a.corp.example")); err != nil {
		t.Fatal(err)
	}
	if got := w.digestsQueued(t); len(got) != 1 || got[0] != "owner@example.com" {
		t.Fatalf("digests: %v", got)
	}
}

// An account whose only proposals are gone (its zone gone from the
// agent's transfers) gets no digest.
func TestNoDigestForGoneProposalsOnly(t *testing.T) {
	w := claimedWorld(t)
	ctx := context.Background()
	if _, err := w.p.StoreDiscovered(ctx, batch(w, false, "a.corp.example")); err != nil {
		t.Fatal(err)
	}
	if c, err := w.p.StoreDiscovered(ctx, batch(w, false)); err != nil || c.Gone != 1 {
		t.Fatalf("the zone gone: %+v %v", c, err)
	}
	if got := w.digestsQueued(t); len(got) != 0 {
		t.Fatalf("digests: %v", got)
	}
}
