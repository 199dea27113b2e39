// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/smtptest"
	"github.com/keychest/keychest-lined/store"
)

// claimMail starts the app on mail with give-up time giveUp, claims a key
// for an address, and returns the app.
func claimMail(t *testing.T, mail *smtptest.Server, giveUp time.Duration) *testApp {
	t.Helper()
	a := startApp(t, func(c *Config) {
		withSMTP(mail)(c)
		c.MailGiveUp = giveUp
	})
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email unlucky@example.com", "status ok 200 claimed")
	return a
}

// failedMail waits for the outbox's one mail to fail for good, and returns
// it as "keychest-lined mails --failed --json" shows it.
func failedMail(t *testing.T, a *testApp) store.QueuedMail {
	t.Helper()
	waitOutbox(t, a.cfg.DatabaseURL, "failed_at IS NOT NULL")
	code, out, errOut := cli(t, a.cfg.DatabaseURL, "mails", "--failed", "--json")
	var mails []store.QueuedMail
	if err := json.Unmarshal([]byte(out), &mails); code != 0 || err != nil || len(mails) != 1 || mails[0].Status != "failed" {
		t.Fatalf("mails --failed: exit %d, %v, %q %q", code, err, out, errOut)
	}
	if code, out, _ := cli(t, a.cfg.DatabaseURL, "mails"); code != 0 || !strings.Contains(out, "unlucky@example.com") ||
		!strings.Contains(out, "failed") {
		t.Fatalf("mails table: exit %d\n%s", code, out)
	}
	return mails[0]
}

// A permanent rejection (5xx) fails the mail at once, with its reason: no
// retries, no tokens kept, counted in /metrics.
func TestMail5xxFails(t *testing.T) {
	mail := smtptest.Start(t)
	mail.Reject(550, "no such mailbox here")
	a := claimMail(t, mail, time.Hour)
	m := failedMail(t, a)
	if m.Attempts != 1 || !strings.Contains(m.LastError, "550") || !strings.Contains(m.LastError, "no such mailbox here") {
		t.Fatalf("failed mail %+v: want 1 attempt and the 550 reply", m)
	}
	if n := mail.Rejected(); n != 1 {
		t.Fatalf("%d attempts reached the server, want 1", n)
	}
	if n := a.count(t, `SELECT count(*) FROM outbox WHERE link_tokens IS NOT NULL`); n != 0 {
		t.Fatal("a failed mail kept its tokens")
	}
	if v := metric(t, a, "keychest_mails_given_up_total", map[string]string{"kind": "confirm"}); v != 1 {
		t.Fatalf("mails given up: %v", v)
	}
}

// A passing refusal (4xx) or a mail server that is down is retried with
// backoff until KEYCHEST_MAIL_GIVE_UP, then the mail fails with the last
// reason.
func TestMailGivesUp(t *testing.T) {
	for _, tt := range []struct {
		name   string
		down   func(*smtptest.Server)
		reason string
	}{
		{"4xx", func(s *smtptest.Server) { s.Reject(451, "greylisted, come back later") }, "451"},
		{"down", func(s *smtptest.Server) { s.Stop() }, "connect"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mail := smtptest.Start(t)
			tt.down(mail)
			const giveUp = 600 * time.Millisecond
			start := time.Now()
			a := claimMail(t, mail, giveUp)
			m := failedMail(t, a)
			if m.Attempts < 2 || !strings.Contains(m.LastError, "given up after 600ms") || !strings.Contains(m.LastError, tt.reason) {
				t.Fatalf("failed mail %+v: want retries, then given up with %q", m, tt.reason)
			}
			if took := time.Since(start); took < giveUp {
				t.Fatalf("given up after %s, before %s", took, giveUp)
			}
			if tt.name == "4xx" && mail.Rejected() != m.Attempts {
				t.Fatalf("%d attempts recorded, %d reached the server", m.Attempts, mail.Rejected())
			}
		})
	}
}

func (a *testApp) count(t *testing.T, sql string) int {
	t.Helper()
	var n int
	if err := connect(t, a.cfg.DatabaseURL).QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}
