// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/store"
)

// Transport delivers one mail.
type Transport interface {
	Send(m store.Mail) error
}

// Observer counts deliveries (metrics).
type Observer interface {
	MailSent(kind string)
	MailFailed(kind string)  // a failed attempt
	MailGivenUp(kind string) // a mail failed for good
}

// Outbox is what the sender needs of storage (store.Postgres has it).
type Outbox interface {
	// SendNext takes the oldest mail that is due, calls send with it, and
	// records what send reports: sent, failed for good, or due again
	// later. It reports false when no mail was due.
	SendNext(ctx context.Context, send func(store.Mail) store.Attempt) (bool, error)
}

// The database's outbox is one; a signature that drifts fails the build.
var _ Outbox = (*store.Postgres)(nil)

// Sender delivers the outbox: each due mail once, retrying passing failures
// (a 4xx reply, a network error) with exponential backoff for at most
// GiveUp. A permanent rejection (5xx), or GiveUp passing, fails the mail
// for good, with its reason. Mails survive restarts in the outbox table.
type Sender struct {
	Outbox    Outbox
	Transport Transport
	Observer  Observer
	Log       zerolog.Logger
	// RetryMin and RetryMax bound the backoff between attempts.
	RetryMin, RetryMax time.Duration
	// GiveUp is how long after it was queued a mail is still tried.
	GiveUp time.Duration
	// Poll is how often the outbox is checked without a Poke.
	Poll time.Duration
	// Compose words each mail just before it is sent (Composer.Fill);
	// without it a mail goes out with the text it was queued with.
	Compose func(*store.Mail)

	poke chan struct{}
}

// NewSender returns a Sender with its defaults filled in.
func NewSender(outbox Outbox, t Transport, obs Observer, log zerolog.Logger) *Sender {
	return &Sender{Outbox: outbox, Transport: t, Observer: obs, Log: log,
		RetryMin: 2 * time.Second, RetryMax: 10 * time.Minute, GiveUp: 72 * time.Hour, Poll: time.Second,
		poke: make(chan struct{}, 1)}
}

// Poke asks the sender to look at the outbox now (a claim just queued mail).
func (s *Sender) Poke() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// Run delivers mail until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	tick := time.NewTicker(s.Poll)
	defer tick.Stop()
	for {
		s.drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.poke:
		}
	}
}

// drain sends every mail that is due.
func (s *Sender) drain(ctx context.Context) {
	for ctx.Err() == nil {
		found, err := s.Outbox.SendNext(ctx, s.send)
		if err != nil {
			s.Log.Warn().Str("code", logcode.OutboxUnreadable).Time("event_time", time.Now()).Err(err).Msg("cannot read the outbox")
			return
		}
		if !found {
			return
		}
	}
}

// send tries m once and says what became of it.
func (s *Sender) send(m store.Mail) store.Attempt {
	if s.Compose != nil {
		s.Compose(&m)
	}
	err := s.Transport.Send(m)
	if err == nil {
		s.Log.Info().Str("code", deliveredCode(m.Kind)).Time("event_time", time.Now()).Int64("mail", m.ID).
			Str("kind", m.Kind).Int("findings", len(m.Items)).Msg("mail delivered")
		if s.Observer != nil {
			s.Observer.MailSent(m.Kind)
		}
		return store.Attempt{}
	}
	if s.Observer != nil {
		s.Observer.MailFailed(m.Kind)
	}
	a := s.judge(m, err)
	if a.Failed {
		s.Log.Error().Str("code", logcode.MailFailed).Time("event_time", time.Now()).Int64("mail", m.ID).
			Str("kind", m.Kind).Int("attempt", m.Attempts+1).Err(a.Err).Msg("mail failed for good")
		if s.Observer != nil {
			s.Observer.MailGivenUp(m.Kind)
		}
		return a
	}
	s.Log.Warn().Str("code", logcode.MailRetry).Time("event_time", time.Now()).Int64("mail", m.ID).
		Str("kind", m.Kind).Int("attempt", m.Attempts+1).Dur("retry_in", a.RetryIn).Err(err).
		Msg("mail not delivered, will retry")
	return a
}

// judge decides what a failed attempt means: a permanent rejection fails
// the mail; a passing one retries it after backoff, the last time when
// GiveUp ends, and past GiveUp fails it.
func (s *Sender) judge(m store.Mail, err error) store.Attempt {
	left := s.GiveUp - m.Age
	switch {
	case Permanent(err):
		return store.Attempt{Err: err, Failed: true}
	case left <= 0:
		return store.Attempt{Err: fmt.Errorf("given up after %s: %w", s.GiveUp, err), Failed: true}
	}
	return store.Attempt{Err: err, RetryIn: min(s.backoff(m.Attempts+1), left)}
}

// backoff doubles from RetryMin up to RetryMax.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.RetryMin
	for i := 1; i < attempts && d < s.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.RetryMax)
}

// deliveredCode is the log code of a delivered mail of kind: claim mails
// (confirm, new_key), alert mails and digests each have their own.
func deliveredCode(kind string) string {
	switch kind {
	case "alert":
		return logcode.AlertMailSent
	case "digest":
		return logcode.DigestSent
	}
	return logcode.ClaimMailSent
}
