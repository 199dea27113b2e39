package mailer

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/store"
)

// SMTP delivers over SMTP, with STARTTLS when the server offers it
// (smtp://) or TLS from the start (smtps://), and AUTH PLAIN when the URL
// has a user.
type SMTP struct {
	URL      *url.URL
	From     string
	Hostname string // for Message-ID
	Timeout  time.Duration
}

// NewSMTP parses smtp://user:pass@host:port or smtps://...
func NewSMTP(rawURL, from, hostname string) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
		return nil, fmt.Errorf("SMTP URL must look like smtp://user:pass@host:587 (got %q)", rawURL)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), map[string]string{"smtp": "25", "smtps": "465"}[u.Scheme])
	}
	return &SMTP{URL: u, From: from, Hostname: hostname, Timeout: 30 * time.Second}, nil
}

// Send delivers one mail.
func (s *SMTP) Send(m store.Mail) error {
	conn, err := s.dial()
	if err != nil {
		return err
	}
	c, err := smtp.NewClient(conn, s.URL.Hostname())
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := s.secure(c); err != nil {
		return err
	}
	if err := c.Mail(s.From); err != nil {
		return err
	}
	if err := c.Rcpt(m.To); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(s.message(m)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func (s *SMTP) dial() (net.Conn, error) {
	d := &net.Dialer{Timeout: s.Timeout}
	var conn net.Conn
	var err error
	if s.URL.Scheme == "smtps" {
		conn, err = tls.DialWithDialer(d, "tcp", s.URL.Host, &tls.Config{ServerName: s.URL.Hostname()})
	} else {
		conn, err = d.Dial("tcp", s.URL.Host)
	}
	if err == nil {
		conn.SetDeadline(time.Now().Add(s.Timeout))
	}
	return conn, err
}

// secure starts TLS when offered and authenticates when the URL has a user.
func (s *SMTP) secure(c *smtp.Client) error {
	if ok, _ := c.Extension("STARTTLS"); ok && s.URL.Scheme == "smtp" {
		if err := c.StartTLS(&tls.Config{ServerName: s.URL.Hostname()}); err != nil {
			return err
		}
	}
	if s.URL.User == nil {
		return nil
	}
	pass, _ := s.URL.User.Password()
	return c.Auth(smtp.PlainAuth("", s.URL.User.Username(), pass, s.URL.Hostname()))
}

// message renders headers and body with CRLF line ends. The Message-ID is
// derived from the outbox row, so a mail sent again after a crash between
// the SMTP server's acceptance and our commit carries the same ID.
func (s *SMTP) message(m store.Mail) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\n", s.From, m.To, m.Subject)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <outbox-%d@%s>\r\n", time.Now().UTC().Format(time.RFC1123Z), m.ID, s.Hostname)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(m.Body, "\n", "\r\n"))
	return []byte(b.String())
}

// Log writes each mail into the log as one JSON entry, for a server with
// no SMTP configured: the flow still works on one machine.
type Log struct {
	Log zerolog.Logger
}

// Send logs the mail with its text and links.
func (l Log) Send(m store.Mail) error {
	l.Log.Info().Str("code", "MAIL0001").Time("event_time", time.Now()).Int64("mail", m.ID).
		Str("kind", m.Kind).Str("to", m.To).Str("subject", m.Subject).Str("body", m.Body).
		Strs("links", Links(m.Body)).Msg("mail (no SMTP configured)")
	return nil
}

// Links returns the http(s) links in a mail body, in order.
func Links(body string) []string {
	var out []string
	for _, f := range strings.Fields(body) {
		if strings.HasPrefix(f, "http://") || strings.HasPrefix(f, "https://") {
			out = append(out, f)
		}
	}
	return out
}
