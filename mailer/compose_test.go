// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"net/netip"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// A claim's mail is worded when it is sent, from the facts the claim
// stored and the raw tokens, word for word as users have always got it.
func TestClaimMailText(t *testing.T) {
	at := time.Date(2026, 11, 23, 13, 4, 5, 600, time.UTC)
	facts := &store.ClaimMail{KeyPrefix: "Ab3dEf7h", IP: netip.MustParseAddr("2001:db8::7"), At: at,
		Keys: 1, Domains: 2, Expires: at.Add(store.TokenLifetime)}
	c := Composer{PublicURL: "https://keychest.test/"}

	confirm := store.Mail{Kind: "confirm", To: "owner@example.com", Claim: facts,
		Tokens: map[string]string{"confirm": "CT", "block": "BT"}}
	c.Fill(&confirm)
	expectMail(t, confirm, "Confirm your KeyChest account", `A server asked KeyChest to watch its certificates for owner@example.com,
and waits for you to confirm.

  Key:     Ab3dEf7h... (the start of the API key)
  From:    2001:db8::7
  When:    2026-11-23 13:04:05 UTC
  Account: owner@example.com, holding 1 key and 2 domains (not yet confirmed)

Confirm the account and this key (the key's domains become active):
  https://keychest.test/confirm/CT

This wasn't me: block this account (its keys stop working):
  https://keychest.test/block/BT

Both links work once, until 2026-11-30 13:04 UTC. Nothing happens until you press
the button on the page they open.
`)

	facts.IP, facts.Keys = netip.Addr{}, 3
	newKey := store.Mail{Kind: "new_key", To: "owner@example.com", Claim: facts, Tokens: map[string]string{"approve": "AT", "revoke": "RT"}}
	c.Fill(&newKey)
	expectMail(t, newKey, "Approve the new key for your KeyChest account", `A server asked to add a new API key to your KeyChest account. The
key waits for your approval: until then KeyChest does not watch its
domains, and they appear in none of your mails or pages.

  Key:     Ab3dEf7h... (the start of the API key)
  From:    unknown
  When:    2026-11-23 13:04:05 UTC
  Account: owner@example.com, holding 3 keys and 2 domains (confirmed)

If this was you, approve the key (its domains become active):
  https://keychest.test/approve/AT

If this wasn't you, revoke the key (it stops working at once):
  https://keychest.test/revoke/RT

Each link works once, until 2026-11-30 13:04 UTC. Nothing happens until you press
the button on the page it opens. A key you neither approve nor
revoke stays pending.
`)

	// A new_key mail queued before migration 013 has no approve link.
	oldKey := store.Mail{Kind: "new_key", To: "owner@example.com", Claim: facts, Tokens: map[string]string{"revoke": "RT"}}
	c.Fill(&oldKey)
	expectMail(t, oldKey, "New key attached to your KeyChest account", `A new API key was attached to your KeyChest account.

  Key:     Ab3dEf7h... (the start of the API key)
  From:    unknown
  When:    2026-11-23 13:04:05 UTC
  Account: owner@example.com, holding 3 keys and 2 domains (confirmed)

If this wasn't you, revoke the key (it stops working at once):
  https://keychest.test/revoke/RT

The link works once, until 2026-11-30 13:04 UTC. Nothing happens until you press
the button on the page it opens.
`)

	legacy := store.Mail{Kind: "confirm", Subject: "queued before", Body: "with its text"}
	c.Fill(&legacy)
	expectMail(t, legacy, "queued before", "with its text")
}

func expectMail(t *testing.T, m store.Mail, subject, body string) {
	t.Helper()
	if m.Subject != subject || m.Body != body {
		t.Errorf("%s mail:\nsubject %q, want %q\n%s\nwant:\n%s", m.Kind, m.Subject, subject, m.Body, body)
	}
}
