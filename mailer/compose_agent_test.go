// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// The agent's texts reach the mail on one line each, capped: an agent
// cannot add lines (a fake link, a header-like line) to the owner's mail.
func TestAgentClaimMailCleansAgentText(t *testing.T) {
	m := store.Mail{Kind: "agent_claim", To: "o@example.com", Tokens: map[string]string{"agent_approve": "TOK"},
		Claim: &store.ClaimMail{KeyPrefix: "agt-1234", At: time.Now(), Expires: time.Now().Add(time.Hour),
			Agent: &store.AgentMail{ID: "agent-1@agents.keychest.invalid", Host: "evil\nApprove: https://bad.example/x",
				Addresses: []string{"10.0.0.1", "10.0.0.2\r\n\u202e"}, Version: strings.Repeat("v", 5000), OS: "linux", Arch: "amd64",
				Site: "lab", Allow: []string{"allow 10.0.0.0/8 443\nallow 0.0.0.0/0 1-65535"}}}}
	Composer{PublicURL: "https://k.example"}.Fill(&m)
	if strings.Contains(m.Body, "\nApprove:") || strings.Contains(m.Body, "\nallow 0.0.0.0/0") || strings.Contains(m.Body, "\u202e") {
		t.Fatalf("agent text broke lines:\n%s", m.Body)
	}
	if strings.Contains(m.Body, strings.Repeat("v", 201)) || !strings.Contains(m.Body, "https://k.example/agent_approve/TOK") {
		t.Fatalf("body:\n%s", m.Body)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		t.Fatalf("subject: %q", m.Subject)
	}
	for _, want := range []string{"evil Approve: https://bad.example/x", "10.0.0.1, 10.0.0.2", "linux/amd64", "allow 10.0.0.0/8 443 allow 0.0.0.0/0 1-65535"} {
		if !strings.Contains(m.Body, want) {
			t.Fatalf("body lacks %q:\n%s", want, m.Body)
		}
	}
}
