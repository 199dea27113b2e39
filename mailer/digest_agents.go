// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"fmt"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/store"
)

// maxDigestDN is the most of an LDAP DN (or subject) a digest line shows,
// in runes: text from an LDAP store, cleaned.
const maxDigestDN = 200

// digestAgents words a digest's silent agents and LDAP certificates (none
// of either: nothing).
func digestAgents(b *strings.Builder, d store.Digest, now time.Time) {
	if len(d.SilentAgents) > 0 {
		b.WriteString("Agents that stopped calling in (agent_silent):\n")
		for _, a := range d.SilentAgents {
			fmt.Fprintf(b, "    %s  site=%s  host=%s  last seen %s\n", words.Clean(a.ID, maxDigestDN),
				words.Clean(a.Site, maxDigestDN), words.Clean(a.Host, maxDigestDN), words.Stamp(a.LastSeen))
		}
		b.WriteString("\n")
	}
	if len(d.LDAPCerts) == 0 {
		return
	}
	fmt.Fprintf(b, "Certificates your agents read from LDAP stores, soonest expiry first:\n\n")
	fmt.Fprintf(b, "%-6s %-9s %-11s %-10s %s\n", "DAYS", "STATE", "EXPIRES", "FINDING", "LDAP DN")
	for _, c := range d.LDAPCerts {
		fmt.Fprintf(b, "%-6d %-9s %-11s %-10s %s (site=%s)\n", words.DaysLeft(c.NotAfter, now), c.State,
			c.NotAfter.UTC().Format("2006-01-02"), dashed(c.Finding), words.Clean(c.DN, maxDigestDN), words.Clean(c.Site, maxDigestDN))
	}
	if d.LDAPCertsTotal > len(d.LDAPCerts) {
		page := "lists them all"
		if d.LDAPCertsTotal > store.MaxPageLDAPCerts {
			page = fmt.Sprintf("lists the %d soonest to expire", store.MaxPageLDAPCerts)
		}
		fmt.Fprintf(b, "    (%d of %d shown: your account page %s)\n", len(d.LDAPCerts), d.LDAPCertsTotal, page)
	}
	b.WriteString("\n")
}
