// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/smtptest"
	"github.com/keychest/keychest-lined/store"
)

var testMail = store.Mail{ID: 7, Kind: "confirm", To: "owner@example.com", Subject: "Confirm", Body: "Hello,\nconfirm here.\n"}

func newTestSMTP(t *testing.T, rawURL string) *SMTP {
	t.Helper()
	s, err := NewSMTP(rawURL, "keychest@test.example", "test.example")
	if err != nil {
		t.Fatal(err)
	}
	s.Timeout = 5 * time.Second
	return s
}

// A server that offers STARTTLS gets the mail over TLS, with the password
// (AUTH PLAIN) only once TLS is on.
func TestSMTPStartTLSAndAuth(t *testing.T) {
	srv := smtptest.StartTLS(t)
	s := newTestSMTP(t, "smtp://me:secret@"+srv.Addr)
	s.RootCAs = srv.RootCAs
	if err := s.Send(testMail); err != nil {
		t.Fatal(err)
	}
	m := srv.Wait(t, 1, 5*time.Second)[0]
	if !m.TLS || m.User != "me" || m.To[0] != "owner@example.com" || m.From != "keychest@test.example" {
		t.Fatalf("received %+v", m)
	}
	if m.Header("Subject") != "Confirm" || m.Header("Message-ID") != "<outbox-7@test.example>" ||
		m.Body() != testMail.Body {
		t.Fatalf("message:\n%s", m.Data)
	}
}

// A server without STARTTLS gets the mail in clear (the test receiver on
// loopback); a certificate the client does not trust stops the send.
func TestSMTPPlainAndUntrusted(t *testing.T) {
	plain := smtptest.Start(t)
	if err := newTestSMTP(t, "smtp://"+plain.Addr).Send(testMail); err != nil {
		t.Fatal(err)
	}
	if m := plain.Wait(t, 1, 5*time.Second)[0]; m.TLS {
		t.Fatal("TLS without STARTTLS?")
	}
	untrusted := smtptest.StartTLS(t)
	err := newTestSMTP(t, "smtp://"+untrusted.Addr).Send(testMail)
	if err == nil || !strings.Contains(err.Error(), "certificate") || len(untrusted.Messages()) != 0 {
		t.Fatalf("untrusted certificate: %v, %d messages", err, len(untrusted.Messages()))
	}
}

// 5xx is permanent; 4xx and a server that is down are not.
func TestSMTPPermanent(t *testing.T) {
	srv := smtptest.Start(t)
	s := newTestSMTP(t, "smtp://"+srv.Addr)
	for _, tt := range []struct {
		setup     func()
		permanent bool
	}{
		{func() { srv.Reject(550, "no such user") }, true},
		{func() { srv.Reject(452, "mailbox full, for now") }, false},
		{func() { srv.Stop() }, false},
	} {
		tt.setup()
		err := s.Send(testMail)
		if err == nil || Permanent(err) != tt.permanent {
			t.Errorf("%v: permanent %v, want %v", err, Permanent(err), tt.permanent)
		}
	}
}
