// SPDX-License-Identifier: Apache-2.0

// Package mailer words the outbox's mails when they are sent (claims,
// alerts, digests) and delivers them: over SMTP, or into the log when no
// SMTP server is configured. Its Sender, built from a SenderConfig, takes
// each due mail from the outbox once, retries passing failures with
// backoff and fails a mail for good on a 5xx or once it has been tried
// for its give-up time.
package mailer

import (
	"fmt"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/store"
)

// Composer words mails with links under PublicURL.
type Composer struct {
	PublicURL string // e.g. https://keychest.example.com, without a trailing slash
}

// Fill words a mail as it is sent: a claim's mail, an account's batch of
// alerts, its weekly digest. A claim mail queued before its facts were
// stored (migration 011) is left as it was queued.
func (c Composer) Fill(m *store.Mail) {
	switch m.Kind {
	case "confirm", "new_key":
		if m.Claim != nil {
			m.Subject, m.Body = c.claim(m.Kind, m.To, *m.Claim, m.Tokens)
		}
	case "agent_claim":
		if m.Claim != nil && m.Claim.Agent != nil {
			m.Subject, m.Body = c.agentClaim(m.To, *m.Claim, m.Tokens["agent_approve"])
		}
	case "alert":
		m.Subject, m.Body = c.alert(m.Items)
		m.ListUnsubscribe = c.link("alerts_off", m.Tokens["alerts_off"])
		m.Body += c.footer(m.Tokens["account"], "Stop these alerts (the weekly digest stays)", m.ListUnsubscribe)
	case "digest":
		if m.Digest == nil {
			return
		}
		m.Subject, m.Body = c.digest(*m.Digest, time.Now())
		m.ListUnsubscribe = c.link("digest_off", m.Tokens["digest_off"])
		m.Body += c.footer(m.Tokens["account"], "Stop the weekly digest (alerts stay)", m.ListUnsubscribe)
	}
}

// claim words a claim's mail: kind "confirm" for an unconfirmed account,
// "new_key" for a confirmed one, to email, with the links of tokens.
// A "new_key" mail without an approve token was queued before keys waited
// for approval, and keeps its old words.
func (c Composer) claim(kind, email string, m store.ClaimMail, tokens map[string]string) (subject, body string) {
	var b strings.Builder
	when := m.At.UTC().Format("2006-01-02 15:04:05 UTC")
	until := m.Expires.UTC().Format("2006-01-02 15:04 UTC")
	holds := fmt.Sprintf("%s, holding %s and %s", email, words.Count(m.Keys, "key"), words.Count(m.Domains, "domain"))
	if kind == "new_key" && tokens["approve"] == "" {
		// Queued before keys waited for approval (migration 013): the key is active.
		subject = "New key attached to your KeyChest account"
		fmt.Fprintf(&b, "A new API key was attached to your KeyChest account.\n\n")
		c.facts(&b, m, when, holds+" (confirmed)")
		fmt.Fprintf(&b, "If this wasn't you, revoke the key (it stops working at once):\n  %s\n\n", c.link("revoke", tokens["revoke"]))
		fmt.Fprintf(&b, "The link works once, until %s. Nothing happens until you press\nthe button on the page it opens.\n", until)
		return subject, b.String()
	}
	if kind == "new_key" {
		return c.newKey(m, when, until, holds, tokens)
	}
	subject = "Confirm your KeyChest account"
	fmt.Fprintf(&b, "A server asked KeyChest to watch its certificates for %s,\nand waits for you to confirm.\n\n", email)
	c.facts(&b, m, when, holds+" (not yet confirmed)")
	fmt.Fprintf(&b, "Confirm the account and this key (the key's domains become active):\n  %s\n\n", c.link("confirm", tokens["confirm"]))
	fmt.Fprintf(&b, "This wasn't me: block this account (its keys stop working):\n  %s\n\n", c.link("block", tokens["block"]))
	fmt.Fprintf(&b, "Both links work once, until %s. Nothing happens until you press\nthe button on the page they open.\n", until)
	return subject, b.String()
}

// newKey words the mail of a key claimed onto a confirmed account: the
// key waits for the owner's approval, and the mail carries the approve
// and revoke links.
func (c Composer) newKey(m store.ClaimMail, when, until, holds string, tokens map[string]string) (subject, body string) {
	var b strings.Builder
	subject = "Approve the new key for your KeyChest account"
	fmt.Fprintf(&b, "A server asked to add a new API key to your KeyChest account. The\n"+
		"key waits for your approval: until then KeyChest does not watch its\n"+
		"domains, and they appear in none of your mails or pages.\n\n")
	c.facts(&b, m, when, holds+" (confirmed)")
	fmt.Fprintf(&b, "If this was you, approve the key (its domains become active):\n  %s\n\n", c.link("approve", tokens["approve"]))
	fmt.Fprintf(&b, "If this wasn't you, revoke the key (it stops working at once):\n  %s\n\n", c.link("revoke", tokens["revoke"]))
	fmt.Fprintf(&b, "Each link works once, until %s. Nothing happens until you press\n"+
		"the button on the page it opens. A key you neither approve nor\n"+
		"revoke stays pending.\n", until)
	return subject, b.String()
}

func (c Composer) facts(b *strings.Builder, m store.ClaimMail, when, holds string) {
	ip := "unknown"
	if m.IP.IsValid() {
		ip = m.IP.String()
	}
	fmt.Fprintf(b, "  Key:     %s... (the start of the API key)\n", m.KeyPrefix)
	fmt.Fprintf(b, "  From:    %s\n", ip)
	fmt.Fprintf(b, "  When:    %s\n", when)
	fmt.Fprintf(b, "  Account: %s\n\n", holds)
}

func (c Composer) link(action, token string) string {
	return strings.TrimSuffix(c.PublicURL, "/") + "/" + action + "/" + token
}
