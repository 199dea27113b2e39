// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/store"
)

// A finding's detail is text from outside (a CA's error, a proxy's
// report): in a mail it stays on its own indented line, cut short, and
// can never start a line of its own.
func TestAlertAndDigestKeepOutsideTextOnOneLine(t *testing.T) {
	at := time.Date(2026, 11, 23, 13, 4, 0, 0, time.UTC)
	hostile := "refused\r\n\r\nURGENT: your account is suspended, re-verify at https://evil.test/\n" + strings.Repeat("x", 2000)
	_, body := Composer{}.alert([]finding.AlertItem{{Target: "victim.example:443", Kind: finding.KindACMEInvalid, Change: "opened",
		Severity: "warning", Detail: hostile, Since: at, At: at}})
	_, digest := Composer{}.digest(store.Digest{Since: at, Changes: []store.DigestChange{{At: at, Target: "victim.example:443",
		What: "new finding: acme_invalid", Detail: hostile}}}, at)
	for _, text := range []string{body, digest} {
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "URGENT") || strings.Contains(line, "\r") || len(line) > 700 {
				t.Fatalf("outside text broke out of its line: %q\nin\n%s", line, text)
			}
		}
		if !strings.Contains(text, "refused URGENT: your account") {
			t.Fatalf("the detail is gone:\n%s", text)
		}
	}
}

// An ACME finding's detail ends with the CA's own text: a "; " in it does
// not start an indented line of its own, as a monitor finding's list of
// addresses does.
func TestACMEDetailWithSemicolonStaysOnOneLine(t *testing.T) {
	at := time.Date(2026, 11, 23, 13, 4, 0, 0, time.UTC)
	_, body := Composer{}.alert([]finding.AlertItem{
		{Target: "victim.example:443", Kind: finding.KindACMEAccountFailing, Change: "opened", Severity: "warning",
			Detail: "3 failures; last: connection refused; URGENT: re-verify at https://evil.test/", Since: at, At: at},
		{Target: "two.example:443", Kind: finding.KindUnreach, Change: "opened", Severity: "critical",
			Detail: "192.0.2.1: timeout; 192.0.2.2: refused", Since: at, At: at}})
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "URGENT") || strings.HasPrefix(strings.TrimSpace(line), "last:") {
			t.Fatalf("the CA's text started a line of its own: %q\nin\n%s", line, body)
		}
	}
	if !strings.Contains(body, "\n    192.0.2.1: timeout\n    192.0.2.2: refused\n") {
		t.Fatalf("a monitor finding's addresses are no longer one a line:\n%s", body)
	}
}
