// SPDX-License-Identifier: Apache-2.0

package web

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// The account page lists the account's LDAP certificates with their DN
// cleaned (one line, cut short) and HTML-escaped, and its silent agents.
func TestAccountPageShowsLDAPCertsAndSilentAgents(t *testing.T) {
	now := time.Now()
	v := store.AccountView{Email: "owner@example.com", LDAPCertsTotal: 3,
		LDAPCerts: []store.LDAPCertView{
			{Site: "office", DN: "cn=soon,dc=corp", Attribute: "userCertificate", Subject: "CN=soon", Issuer: "Corp CA",
				NotAfter: now.Add(5*24*time.Hour + time.Hour), State: "critical", Finding: "expiry", Severity: "critical", Detail: "expires in 5 days"},
			{Site: "office", DN: "cn=<script>alert(1)</script>\r\nX-Evil: 1," + strings.Repeat("dc=x,", 200), Attribute: "cACertificate",
				NotAfter: now.Add(-48 * time.Hour), State: "critical"},
		},
		SilentAgents: []store.SilentAgent{{ID: "agent-x@agents.test", Site: "office", Host: "gw\n<b>x</b>", LastSeen: now.Add(-time.Hour),
			Since: now.Add(-30 * time.Minute), Severity: "warning"}},
	}
	m := accountModel(v, now)
	if len(m.LDAPCerts) != 2 || m.LDAPCertsTotal != 3 || !strings.Contains(m.LDAPNote, "2 soonest to expire of 3") ||
		strings.Contains(m.LDAPNote, "keychest-lined") { // no operator's command for the owner
		t.Fatalf("model: %+v", m)
	}
	if c := m.LDAPCerts[1]; strings.ContainsAny(c.DN, "\r\n") || len([]rune(c.DN)) > maxLDAPText+1 || !strings.HasPrefix(c.Days, "expired 2 days") {
		t.Fatalf("hostile DN: %+v", c)
	}
	var b strings.Builder
	if err := accountTemplate.Execute(&b, m); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{`data-ldap-dn="cn=soon,dc=corp"`, "LDAP cn=soon,dc=corp", "5 days left", "<b>expiry</b> (critical): expires in 5 days",
		"Certificates in LDAP stores (3)", "cn=&lt;script&gt;alert(1)&lt;/script&gt; X-Evil: 1,", `data-silent-agent="agent-x@agents.test"`,
		"<b>agent_silent</b> (warning", "host gw &lt;b&gt;x&lt;/b&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "<b>x</b>") || strings.Contains(page, "\nX-Evil") {
		t.Errorf("page carries the store's or the agent's markup:\n%s", page)
	}
}

// A page without LDAP certificates or silent agents has neither section.
func TestAccountPageWithoutLDAPCertsOrSilentAgents(t *testing.T) {
	var b strings.Builder
	if err := accountTemplate.Execute(&b, accountModel(store.AccountView{Email: "owner@example.com"}, time.Now())); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "LDAP stores") || strings.Contains(b.String(), "not calling in") {
		t.Error("empty sections shown")
	}
}
