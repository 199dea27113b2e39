package mailer

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/store"
)

// Transport delivers one mail.
type Transport interface {
	Send(m store.Mail) error
}

// Observer counts deliveries (metrics).
type Observer interface {
	MailSent(kind string)
	MailFailed(kind string)
}

// Sender delivers the outbox: each due mail once, retrying failures with
// exponential backoff. Mails survive restarts in the outbox table.
type Sender struct {
	Outbox    store.Outbox
	Transport Transport
	Observer  Observer
	Log       zerolog.Logger
	// RetryMin and RetryMax bound the backoff between attempts.
	RetryMin, RetryMax time.Duration
	// Poll is how often the outbox is checked without a Poke.
	Poll time.Duration

	poke chan struct{}
}

// NewSender returns a Sender with its defaults filled in.
func NewSender(outbox store.Outbox, t Transport, obs Observer, log zerolog.Logger) *Sender {
	return &Sender{Outbox: outbox, Transport: t, Observer: obs, Log: log,
		RetryMin: 2 * time.Second, RetryMax: 10 * time.Minute, Poll: time.Second,
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
		found, err := s.Outbox.SendNext(ctx, s.send, s.backoff)
		if err != nil {
			s.Log.Warn().Str("code", "MAIL0503").Time("event_time", time.Now()).Err(err).Msg("cannot read the outbox")
			return
		}
		if !found {
			return
		}
	}
}

func (s *Sender) send(m store.Mail) error {
	err := s.Transport.Send(m)
	if err != nil {
		s.Log.Warn().Str("code", "MAIL0500").Time("event_time", time.Now()).Int64("mail", m.ID).
			Str("kind", m.Kind).Int("attempt", m.Attempts+1).Err(err).Msg("mail not delivered, will retry")
		if s.Observer != nil {
			s.Observer.MailFailed(m.Kind)
		}
		return err
	}
	s.Log.Info().Str("code", "MAIL0200").Time("event_time", time.Now()).Int64("mail", m.ID).
		Str("kind", m.Kind).Msg("mail delivered")
	if s.Observer != nil {
		s.Observer.MailSent(m.Kind)
	}
	return nil
}

// backoff doubles from RetryMin up to RetryMax.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.RetryMin
	for i := 1; i < attempts && d < s.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.RetryMax)
}
