// SPDX-License-Identifier: Apache-2.0

package web

import (
	"fmt"
	"time"

	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/store"
)

// maxLDAPText is the most of an LDAP DN, subject or issuer the page
// shows, in runes: text from a store the service does not own.
const maxLDAPText = 255

// silentRow is an agent of the account with an open agent_silent finding;
// its text (id, site, host) is the agent's, cleaned.
type silentRow struct{ ID, Site, Host, LastSeen, Since, Severity string }

// ldapRow is a certificate the account's agents read from an LDAP store:
// its DN, subject and issuer cleaned.
type ldapRow struct {
	DN, Attribute, Site, Subject, Issuer, Expires, Days, State string
	Finding                                                    *findingRow
}

// agentsModel words the account's silent agents and LDAP certificates,
// and says how many of those the page leaves out.
func agentsModel(v store.AccountView, now time.Time) (silent []silentRow, ldap []ldapRow, note string) {
	for _, a := range v.SilentAgents {
		silent = append(silent, silentRow{ID: words.Clean(a.ID, maxLDAPText), Site: words.Clean(a.Site, maxLDAPText),
			Host: words.Clean(a.Host, maxLDAPText), LastSeen: words.Stamp(a.LastSeen), Since: words.Stamp(a.Since),
			Severity: a.Severity})
	}
	for _, c := range v.LDAPCerts {
		r := ldapRow{DN: words.Clean(c.DN, maxLDAPText), Attribute: c.Attribute, Site: words.Clean(c.Site, maxLDAPText),
			Subject: words.Clean(c.Subject, maxLDAPText), Issuer: words.Clean(c.Issuer, maxLDAPText),
			Expires: words.Stamp(c.NotAfter), State: c.State}
		if days := words.DaysLeft(c.NotAfter, now); days >= 0 {
			r.Days = words.Count(days, "day left", "days left")
		} else {
			r.Days = "expired " + words.Count(-days, "day ago", "days ago")
		}
		if c.Finding != "" {
			r.Finding = &findingRow{Kind: c.Finding, Severity: c.Severity, Detail: words.Clean(c.Detail, words.MaxShown)}
		}
		ldap = append(ldap, r)
	}
	if v.LDAPCertsTotal > len(v.LDAPCerts) {
		note = fmt.Sprintf("Shown: the %d soonest to expire of %d; the others expire later.", len(v.LDAPCerts), v.LDAPCertsTotal)
	}
	return silent, ldap, note
}
