// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// ldapAgent gives account email a claimed agent of site office, and
// returns its key.
func (w *world) ldapAgent(email string) store.KeyRef {
	w.t.Helper()
	key := store.KeyRef{Hash: sha256.Sum256([]byte("agent of " + email)), Prefix: "agt-" + email[:4]}
	w.exec(`INSERT INTO accounts (email, confirmed_at) VALUES ($1, now()) ON CONFLICT (email) DO NOTHING`, email)
	w.exec(`INSERT INTO agents (agent_id, key_hash, key_prefix, site, account_id, claimed_at, last_seen_at)
		SELECT 'agent-' || id || '@agents.test', $2, $3, 'office', id, now(), now() FROM accounts WHERE email = $1`,
		email, key.Hash[:], key.Prefix)
	return key
}

// ldapCert is a certificate of an LDAP entry, lifetime 90 days, expiring
// left from now.
func ldapCert(dn string, now time.Time, left time.Duration) store.DiscoveredCert {
	fp := sha256.Sum256([]byte(dn + left.String()))
	return store.DiscoveredCert{DN: dn, Attribute: "userCertificate", Fingerprint: fp[:], Subject: "cn=" + dn[3:7],
		Issuer: "Corp CA", NotBefore: now.Add(left - 90*24*time.Hour), NotAfter: now.Add(left)}
}

// alertsTo lists the alert mails sent, by recipient.
func alertsTo(sent []store.Mail) map[string][]store.Mail {
	out := map[string][]store.Mail{}
	for _, m := range sent {
		if m.Kind == "alert" {
			out[m.To] = append(out[m.To], m)
		}
	}
	return out
}

// A certificate read from an LDAP store that expires in 5 days gives a
// critical expiry finding, labelled with its DN, mailed to the account
// owning the agent only; a healthy one gives nothing until it crosses
// the warning threshold; a certificate gone from the store closes its
// finding. No probe is made.
func TestLDAPCertificateExpiryFindings(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	mine, other := w.ldapAgent("owner@example.com"), w.ldapAgent("other@example.com")
	now := w.clock()
	const dn, dn2 = "cn=web01,ou=servers,dc=corp,dc=example", "cn=mail1,ou=servers,dc=corp,dc=example"
	batch := store.CertBatch{AgentKey: mine, Source: "ldap:ldap://127.0.0.1:389 dc=corp,dc=example",
		Certs: []store.DiscoveredCert{ldapCert(dn, now, 5*24*time.Hour), ldapCert(dn2, now, 25*24*time.Hour)}}
	if _, err := w.db.StoreDiscoveredCerts(ctx, batch); err != nil {
		t.Fatal(err)
	}
	healthy := store.CertBatch{AgentKey: other, Source: "ldap:ldap://127.0.0.1:389 dc=other,dc=example",
		Certs: []store.DiscoveredCert{ldapCert("cn=fine,dc=other,dc=example", now, 60*24*time.Hour)}}
	if _, err := w.db.StoreDiscoveredCerts(ctx, healthy); err != nil {
		t.Fatal(err)
	}
	m := w.monitor("m1")
	w.round(m)
	open := `SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE t.discovered_cert IS NOT NULL AND t.name = $1 AND f.kind = 'expiry' AND f.severity = $2 AND f.closed_at IS NULL`
	if n := w.count(open, dn, "critical"); n != 1 {
		t.Fatalf("%d open critical expiry findings for %s, want 1", n, dn)
	}
	if n := w.count(`SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE t.discovered_cert IS NOT NULL AND t.name <> $1`, dn); n != 0 {
		t.Fatalf("%d findings for certificates outside their window", n)
	}
	mails := alertsTo(w.sendAll())
	if len(mails) != 1 || len(mails["owner@example.com"]) != 1 {
		t.Fatalf("alert mails went to %v, want owner@example.com only", keysOf(mails))
	}
	if body := mails["owner@example.com"][0].Body; !strings.Contains(body, "LDAP "+dn) || !strings.Contains(body, "CRITICAL") || !strings.Contains(body, "in the LDAP entry") {
		t.Fatalf("alert mail without the DN or severity:\n%s", body)
	}
	if n := w.count(`SELECT count(*) FROM mon_observations`); n != 0 {
		t.Fatalf("%d observations: something was probed", n)
	}

	// Six days on: the first has expired (raised), the second crossed
	// into its critical window (opened); the other account's stays fine.
	w.advance(6 * 24 * time.Hour)
	m.ldapAt = time.Time{}
	w.round(m)
	if w.count(open, dn, "expired") != 1 || w.count(open, dn2, "warning") != 1 {
		t.Fatal("crossing a threshold later did not raise or open the finding")
	}
	if mails := alertsTo(w.sendAll()); len(mails) != 1 || len(mails["owner@example.com"]) != 1 ||
		!strings.Contains(mails["owner@example.com"][0].Body, dn2) {
		t.Fatalf("after six days, alert mails went to %v", keysOf(mails))
	}

	// The store no longer has the first: its finding closes.
	batch.Certs = batch.Certs[1:]
	if _, err := w.db.StoreDiscoveredCerts(ctx, batch); err != nil {
		t.Fatal(err)
	}
	m.ldapAt = time.Time{}
	w.round(m)
	if n := w.count(`SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE t.name = $1 AND f.closed_at IS NULL`, dn); n != 0 {
		t.Fatalf("the gone certificate keeps %d open findings", n)
	}
	if w.count(open, dn2, "warning") != 1 {
		t.Fatal("the remaining certificate's finding closed")
	}
	mails = alertsTo(w.sendAll())
	if len(mails) != 1 || !strings.Contains(mails["owner@example.com"][0].Body, dn) {
		t.Fatalf("resolved mail went to %v", keysOf(mails))
	}

	// The second is renewed in place (the entry holds both for a while):
	// its finding closes; the new one is outside its window.
	renewed := ldapCert(dn2, w.clock(), 80*24*time.Hour)
	renewed.Subject = batch.Certs[0].Subject
	batch.Certs = append(batch.Certs, renewed)
	if _, err := w.db.StoreDiscoveredCerts(ctx, batch); err != nil {
		t.Fatal(err)
	}
	w.exec(`UPDATE mon_targets SET next_due = 'epoch' WHERE discovered_cert IS NOT NULL`) // due now, as after the policy's interval
	m.ldapAt = time.Time{}
	w.round(m)
	if n := w.count(`SELECT count(*) FROM mon_findings WHERE closed_at IS NULL`); n != 0 {
		t.Fatalf("%d findings open after the renewal", n)
	}
}

// The central monitor never leases an LDAP certificate's row.
func TestLDAPCertificateRowsAreNotProbed(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	now := w.clock()
	k := w.ldapAgent("owner@example.com")
	if _, err := w.db.StoreDiscoveredCerts(ctx, store.CertBatch{AgentKey: k, Source: "ldap:ldap://127.0.0.1 dc=x",
		Certs: []store.DiscoveredCert{ldapCert("cn=host,dc=x", now, 5*24*time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.LeaseLDAPCerts(ctx, "judge", now, now, 10); err != nil { // makes the row; lease ends at once
		t.Fatal(err)
	}
	got, err := w.db.Lease(ctx, "central", now.Add(time.Hour), now.Add(2*time.Hour), 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("the central monitor leased %+v (%v)", got, err)
	}
}

// keysOf lists the recipients.
func keysOf(m map[string][]store.Mail) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A certificate gone from its store is deleted (its row, its target and
// its closed finding) by the housekeeping once it has been gone longer
// than the history kept (KEYCHEST_MONITOR_HISTORY), but not while its
// finding is still open; one still in the store is kept whatever its age.
func TestGoneLDAPCertificatesArePruned(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	now := w.clock()
	k := w.ldapAgent("owner@example.com")
	const soon, later, kept = "cn=soon,dc=x", "cn=later,dc=x", "cn=kept,dc=x"
	b := store.CertBatch{AgentKey: k, Source: "ldap:ldap://127.0.0.1 dc=x", Certs: []store.DiscoveredCert{
		ldapCert(soon, now, 5*24*time.Hour), ldapCert(later, now, 60*24*time.Hour), ldapCert(kept, now, 60*24*time.Hour)}}
	if _, err := w.db.StoreDiscoveredCerts(ctx, b); err != nil {
		t.Fatal(err)
	}
	m := w.monitor("m1")
	w.round(m)
	b.Certs = b.Certs[2:] // soon (its finding open) and later are gone
	if _, err := w.db.StoreDiscoveredCerts(ctx, b); err != nil {
		t.Fatal(err)
	}
	left := func() string {
		var s []string
		rows, _ := w.sql.Query(ctx, `SELECT d.dn || '/' || count(t.id) || '/' || count(f.id) FROM discovered_certs d
			LEFT JOIN mon_targets t ON t.discovered_cert = d.id LEFT JOIN mon_findings f ON f.target_id = t.id
			GROUP BY d.dn ORDER BY d.dn`)
		for rows.Next() {
			var r string
			rows.Scan(&r)
			s = append(s, r)
		}
		return strings.Join(s, " ")
	}
	// Within the history: nothing goes.
	if _, err := w.db.Housekeep(ctx, time.Now().Add(-400*24*time.Hour)); err != nil || left() != kept+"/1/0 "+later+"/1/0 "+soon+"/1/1" {
		t.Fatalf("within the history: %q %v", left(), err)
	}
	// Gone longer than the history: later goes; soon waits for its
	// finding to close.
	if _, err := w.db.Housekeep(ctx, time.Now().Add(time.Minute)); err != nil || left() != kept+"/1/0 "+soon+"/1/1" {
		t.Fatalf("past the history, soon's finding open: %q %v", left(), err)
	}
	m.ldapAt = time.Time{}
	w.round(m)
	if _, err := w.db.Housekeep(ctx, time.Now().Add(time.Minute)); err != nil || left() != kept+"/1/0" {
		t.Fatalf("past the history, soon's finding closed: %q %v", left(), err)
	}
	if n := w.count(`SELECT count(*) FROM mon_targets WHERE discovered_cert IS NULL AND name LIKE 'cn=%'`); n != 0 {
		t.Fatalf("%d targets left without their certificate", n)
	}
}

// Pokes (posts with new or gone certificates) have the monitor judge at
// once, but at most once an ldapPokeFloor however many come; a poke
// within it is served once it passed.
func TestLDAPPokesJudgeAtMostOnceAFloor(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	k := w.ldapAgent("owner@example.com")
	b := store.CertBatch{AgentKey: k, Source: "ldap:ldap://127.0.0.1 dc=x"}
	opened := func() int {
		return w.count(`SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id WHERE t.discovered_cert IS NOT NULL`)
	}
	m := w.monitor("m1")
	wall := time.Now()
	for i := range 6 { // a post of one more expiring certificate, and its poke, every 2 s
		b.Certs = append(b.Certs, ldapCert(fmt.Sprintf("cn=c%03d,dc=x", i), w.clock(), 5*24*time.Hour))
		if _, err := w.db.StoreDiscoveredCerts(ctx, b); err != nil {
			t.Fatal(err)
		}
		at := wall.Add(time.Duration(i) * 2 * time.Second)
		m.watchLDAPCerts(ctx, at, true)
		want := 1 // judged at 0 s, then not before 10 s
		if i == 5 {
			want = 6
		}
		if n := opened(); n != want {
			t.Fatalf("after the poke at %s: %d certificates judged, want %d", at.Sub(wall), n, want)
		}
	}
}

// A certificate gone from its store before the cutoff is kept while its
// finding closed after the cutoff: the history keeps that finding.
func TestGoneLDAPCertificateKeepsRecentFinding(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	k := w.ldapAgent("owner@example.com")
	const dn = "cn=soon,dc=x"
	b := store.CertBatch{AgentKey: k, Source: "ldap:ldap://127.0.0.1 dc=x", Certs: []store.DiscoveredCert{ldapCert(dn, w.clock(), 5*24*time.Hour)}}
	if _, err := w.db.StoreDiscoveredCerts(ctx, b); err != nil {
		t.Fatal(err)
	}
	m := w.monitor("m1")
	w.round(m)
	b.Certs = nil
	if _, err := w.db.StoreDiscoveredCerts(ctx, b); err != nil {
		t.Fatal(err)
	}
	m.ldapAt = time.Time{}
	w.round(m) // the finding closes now
	w.exec(`UPDATE discovered_certs SET gone_at = now() - interval '500 days'`)
	findings := `SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id WHERE t.name = $1 AND f.closed_at IS NOT NULL`
	if w.count(findings, dn) != 1 {
		t.Fatal("the gone certificate's finding did not close")
	}
	if _, err := w.db.Housekeep(ctx, time.Now().Add(-400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := w.count(findings, dn); n != 1 {
		t.Fatalf("a finding closed after the cutoff was deleted with its certificate gone before it: %d left", n)
	}
}
