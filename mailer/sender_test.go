// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/store"
)

// failing is a transport whose every attempt fails for now (a network
// error, not a 5xx), and that keeps the subjects it was given.
type failing struct{ subjects *[]string }

func (f failing) Send(m store.Mail) error {
	*f.subjects = append(*f.subjects, m.Subject)
	return errors.New("connection refused")
}

// counting is an Observer that counts.
type counting struct{ sent, failed, givenUp int }

func (c *counting) MailSent(string)    { c.sent++ }
func (c *counting) MailFailed(string)  { c.failed++ }
func (c *counting) MailGivenUp(string) { c.givenUp++ }

// Every setting a Sender has comes from its SenderConfig: the backoff
// bounds, how long it tries, the composer and the observer.
func TestSenderUsesItsConfig(t *testing.T) {
	var subjects []string
	obs := &counting{}
	s := NewSender(SenderConfig{Transport: failing{&subjects}, Observer: obs, Log: zerolog.Nop(),
		RetryMin: time.Second, RetryMax: 4 * time.Second, GiveUp: 10 * time.Second,
		Compose: func(m *store.Mail) { m.Subject = "worded" }})
	for _, c := range []struct {
		attempts int
		age      time.Duration
		retryIn  time.Duration // 0: failed for good
	}{
		{0, 0, time.Second}, {1, 0, 2 * time.Second}, {2, 0, 4 * time.Second}, {7, 0, 4 * time.Second},
		{7, 9 * time.Second, time.Second}, // the last try comes when GiveUp ends
		{7, 10 * time.Second, 0},
	} {
		a := s.send(store.Mail{Kind: "alert", Subject: "queued", Attempts: c.attempts, Age: c.age})
		if a.RetryIn != c.retryIn || a.Failed != (c.retryIn == 0) {
			t.Errorf("attempt %d at %s: %+v, want a retry in %s", c.attempts+1, c.age, a, c.retryIn)
		}
	}
	if len(subjects) != 6 || subjects[0] != "worded" {
		t.Errorf("the transport got %q, not the composed mails", subjects)
	}
	if obs.sent != 0 || obs.failed != 6 || obs.givenUp != 1 {
		t.Errorf("observed %+v", *obs)
	}
}

// A zero duration takes its default.
func TestSenderDefaults(t *testing.T) {
	s := NewSender(SenderConfig{})
	if c := s.cfg; c.RetryMin != DefaultRetryMin || c.RetryMax != DefaultRetryMax || c.GiveUp != DefaultGiveUp || c.Poll != DefaultPoll {
		t.Fatalf("defaults %+v", c)
	}
	if d := s.backoff(30); d != DefaultRetryMax {
		t.Fatalf("backoff after 30 attempts %s", d)
	}
}
