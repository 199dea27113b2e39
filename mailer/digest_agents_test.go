// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// The digest lists the account's silent agents and LDAP certificates,
// counts the latter in its subject, and keeps their outside text on one
// line, cut short.
func TestDigestListsSilentAgentsAndLDAPCerts(t *testing.T) {
	now := time.Now()
	d := store.Digest{Since: now.Add(-7 * 24 * time.Hour), LDAPCertsTotal: 60, LDAPCertProblems: 7,
		LDAPCerts: []store.LDAPCertView{
			{Site: "office", DN: "cn=soon,dc=corp", NotAfter: now.Add(5*24*time.Hour + time.Hour), State: "critical", Finding: "expiry"},
			{Site: "office", DN: "cn=evil\nSubject: pwned," + strings.Repeat("dc=x,", 100), NotAfter: now.Add(90 * 24 * time.Hour), State: "ok"},
		},
		SilentAgents: []store.SilentAgent{{ID: "agent-x@agents.test", Site: "office", Host: "gw\r\nBcc: x", LastSeen: now}},
	}
	subject, body := Composer{}.digest(d, now)
	// 7 of the 60 have a problem, of which the one listed.
	if subject != "KeyChest weekly: 60 certificates watched, 7 with problems" {
		t.Errorf("subject %q", subject)
	}
	for _, want := range []string{"agent-x@agents.test  site=office  host=gw Bcc: x", "critical  ", "expiry", "cn=soon,dc=corp (site=office)",
		"(2 of 60 shown: your account page lists them all)"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	d.LDAPCertsTotal = store.MaxPageLDAPCerts + 100
	if _, body := (Composer{}).digest(d, now); !strings.Contains(body, "(2 of 600 shown: your account page lists the 500 soonest to expire)") {
		t.Errorf("more than the page shows:\n%s", body)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "Subject:") || strings.HasPrefix(line, "Bcc:") || len([]rune(line)) > 300 {
			t.Errorf("outside text broke or stretched a line: %q", line)
		}
	}
}
