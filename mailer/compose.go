// Package mailer writes the mails a claim calls for and delivers the
// outbox: over SMTP, or into the log when no SMTP server is configured.
package mailer

import (
	"fmt"
	"strings"

	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/store"
)

// Composer writes claim mails with links under PublicURL.
type Composer struct {
	PublicURL string // e.g. https://keychest.example.com, without a trailing slash
}

// Compose returns the subject and plain-text body of a claim's mail.
func (c Composer) Compose(m store.ClaimMail) (subject, body string) {
	var b strings.Builder
	when := m.At.UTC().Format("2006-01-02 15:04:05 UTC")
	until := m.Expires.UTC().Format("2006-01-02 15:04 UTC")
	holds := fmt.Sprintf("%s, holding %s and %s", m.Email, words.Count(m.Keys, "key"), words.Count(m.Domains, "domain"))
	if m.Kind == "new_key" {
		subject = "New key attached to your KeyChest account"
		fmt.Fprintf(&b, "A new API key was attached to your KeyChest account.\n\n")
		c.facts(&b, m, when, holds+" (confirmed)")
		fmt.Fprintf(&b, "If this wasn't you, revoke the key (it stops working at once):\n  %s\n\n", c.link("revoke", m.Tokens.Revoke))
		fmt.Fprintf(&b, "The link works once, until %s. Nothing happens until you press\nthe button on the page it opens.\n", until)
		return subject, b.String()
	}
	subject = "Confirm your KeyChest account"
	fmt.Fprintf(&b, "A server asked KeyChest to watch its certificates for %s,\nand waits for you to confirm.\n\n", m.Email)
	c.facts(&b, m, when, holds+" (not yet confirmed)")
	fmt.Fprintf(&b, "Confirm the account (its domains become active):\n  %s\n\n", c.link("confirm", m.Tokens.Confirm))
	fmt.Fprintf(&b, "This wasn't me: block this account (its keys stop working):\n  %s\n\n", c.link("block", m.Tokens.Block))
	fmt.Fprintf(&b, "Both links work once, until %s. Nothing happens until you press\nthe button on the page they open.\n", until)
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
