// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"fmt"
	"strings"

	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/store"
)

// agentTextMax caps each text the agent pushed, as the mail shows it.
const agentTextMax = 200

// agentListMax caps how many addresses or allow-list rules the mail shows.
const agentListMax = 50

// agentClaim words the mail of an agent that asked (run --email) to be
// claimed for email: what the agent says of itself, so that the owner
// knows what they approve, and the approve link. Every text from the agent
// is capped and cleaned of control characters.
func (c Composer) agentClaim(email string, m store.ClaimMail, token string) (subject, body string) {
	a := *m.Agent
	var b strings.Builder
	subject = "Claim the KeyChest agent " + words.Clean(a.Host, 64) + "?"
	fmt.Fprintf(&b, "A KeyChest agent asked to join the account %s. Once claimed, it\n"+
		"takes audit jobs for the names you put behind its site, and dials\n"+
		"them from inside its network, within its own allow-list (which\n"+
		"KeyChest cannot change). It says of itself:\n\n", email)
	line := func(label, v string) { fmt.Fprintf(&b, "  %-10s %s\n", label+":", words.Clean(v, agentTextMax)) }
	line("Host", a.Host)
	line("Agent", a.ID)
	line("Addresses", strings.Join(capList(a.Addresses), ", "))
	line("Version", a.Version)
	line("System", a.OS+"/"+a.Arch)
	line("Site", a.Site)
	ip := "unknown"
	if m.IP.IsValid() {
		ip = m.IP.String()
	}
	line("From", ip)
	line("When", m.At.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "\n  Allow-list (what it may dial):\n")
	if len(a.Allow) == 0 {
		fmt.Fprintf(&b, "    (empty: it dials nothing)\n")
	}
	for _, r := range capList(a.Allow) {
		fmt.Fprintf(&b, "    %s\n", words.Clean(r, agentTextMax))
	}
	fmt.Fprintf(&b, "\nIf you started this agent, claim it (this also confirms the account):\n  %s\n\n", c.link("agent_approve", token))
	fmt.Fprintf(&b, "If you did not, ignore this mail: the agent stays unclaimed.\n\n"+
		"The link works once, until %s. Nothing happens until you press\nthe button on the page it opens.\n",
		m.Expires.UTC().Format("2006-01-02 15:04 UTC"))
	return subject, b.String()
}

// capList is at most agentListMax items of l, with a last one saying how
// many were left out.
func capList(l []string) []string {
	if len(l) <= agentListMax {
		return l
	}
	out := append([]string(nil), l[:agentListMax]...)
	return append(out, fmt.Sprintf("(and %d more)", len(l)-agentListMax))
}
