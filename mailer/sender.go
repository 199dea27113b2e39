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

// Default timings of a Sender, used where its SenderConfig leaves them
// zero.
const (
	DefaultRetryMin = 2 * time.Second
	DefaultRetryMax = 10 * time.Minute
	DefaultGiveUp   = 72 * time.Hour
	DefaultPoll     = time.Second
)

// SenderConfig is everything a Sender is built from; it is not changed
// afterwards. A zero duration takes its default.
type SenderConfig struct {
	Outbox    Outbox
	Transport Transport
	Observer  Observer // nil: deliveries are not counted
	Log       zerolog.Logger
	// RetryMin and RetryMax bound the backoff between attempts
	// (KEYCHEST_MAIL_RETRY_MIN, KEYCHEST_MAIL_RETRY_MAX).
	RetryMin, RetryMax time.Duration
	// GiveUp is how long after it was queued a mail is still tried
	// (KEYCHEST_MAIL_GIVE_UP).
	GiveUp time.Duration
	// Poll is how often the outbox is checked without a Poke.
	Poll time.Duration
	// Compose words each mail just before it is sent (Composer.Fill);
	// nil: a mail goes out with the text it was queued with.
	Compose func(*store.Mail)
}

// Sender delivers the outbox: each due mail once, retrying passing failures
// (a 4xx reply, a network error) with exponential backoff for at most
// GiveUp. A permanent rejection (5xx), or GiveUp passing, fails the mail
// for good, with its reason. Mails survive restarts in the outbox table.
type Sender struct {
	cfg  SenderConfig
	poke chan struct{}
}

// NewSender returns the Sender of cfg, its zero durations set to their
// defaults.
func NewSender(cfg SenderConfig) *Sender {
	cfg.RetryMin = orDefault(cfg.RetryMin, DefaultRetryMin)
	cfg.RetryMax = orDefault(cfg.RetryMax, DefaultRetryMax)
	cfg.GiveUp = orDefault(cfg.GiveUp, DefaultGiveUp)
	cfg.Poll = orDefault(cfg.Poll, DefaultPoll)
	return &Sender{cfg: cfg, poke: make(chan struct{}, 1)}
}

// orDefault is d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
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
	tick := time.NewTicker(s.cfg.Poll)
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
		found, err := s.cfg.Outbox.SendNext(ctx, s.send)
		if err != nil {
			s.cfg.Log.Warn().Str("code", logcode.OutboxUnreadable).Time("event_time", time.Now()).Err(err).Msg("cannot read the outbox")
			return
		}
		if !found {
			return
		}
	}
}

// send tries m once and says what became of it.
func (s *Sender) send(m store.Mail) store.Attempt {
	if s.cfg.Compose != nil {
		s.cfg.Compose(&m)
	}
	err := s.cfg.Transport.Send(m)
	if err == nil {
		s.cfg.Log.Info().Str("code", deliveredCode(m.Kind)).Time("event_time", time.Now()).Int64("mail", m.ID).
			Str("kind", m.Kind).Int("findings", len(m.Items)).Msg("mail delivered")
		if s.cfg.Observer != nil {
			s.cfg.Observer.MailSent(m.Kind)
		}
		return store.Attempt{}
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.MailFailed(m.Kind)
	}
	a := s.judge(m, err)
	if a.Failed {
		s.cfg.Log.Error().Str("code", logcode.MailFailed).Time("event_time", time.Now()).Int64("mail", m.ID).
			Str("kind", m.Kind).Int("attempt", m.Attempts+1).Err(a.Err).Msg("mail failed for good")
		if s.cfg.Observer != nil {
			s.cfg.Observer.MailGivenUp(m.Kind)
		}
		return a
	}
	s.cfg.Log.Warn().Str("code", logcode.MailRetry).Time("event_time", time.Now()).Int64("mail", m.ID).
		Str("kind", m.Kind).Int("attempt", m.Attempts+1).Dur("retry_in", a.RetryIn).Err(err).
		Msg("mail not delivered, will retry")
	return a
}

// judge decides what a failed attempt means: a permanent rejection fails
// the mail; a passing one retries it after backoff, the last time when
// GiveUp ends, and past GiveUp fails it.
func (s *Sender) judge(m store.Mail, err error) store.Attempt {
	left := s.cfg.GiveUp - m.Age
	switch {
	case Permanent(err):
		return store.Attempt{Err: err, Failed: true}
	case left <= 0:
		return store.Attempt{Err: fmt.Errorf("given up after %s: %w", s.cfg.GiveUp, err), Failed: true}
	}
	return store.Attempt{Err: err, RetryIn: min(s.backoff(m.Attempts+1), left)}
}

// backoff doubles from RetryMin up to RetryMax.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.cfg.RetryMin
	for i := 1; i < attempts && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.RetryMax)
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
