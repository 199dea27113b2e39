// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/store"
)

// SMTP delivers over SMTP with go-smtp's client, with STARTTLS when the
// server offers it (smtp://) or TLS from the start (smtps://), and AUTH
// PLAIN, over TLS only, when the URL has a user.
type SMTP struct {
	URL      *url.URL
	From     string
	Hostname string // for EHLO and Message-ID
	Timeout  time.Duration
	RootCAs  *x509.CertPool // whom to trust for TLS; nil: the system's roots
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

// Permanent reports whether err is the SMTP server refusing a mail for
// good (a 5xx reply): sending it again would get the same answer. A 4xx
// and a network error are passing.
func Permanent(err error) bool {
	var smtpErr *smtp.SMTPError
	return errors.As(err, &smtpErr) && smtpErr.Code/100 == 5
}

// Send delivers one mail.
func (s *SMTP) Send(m store.Mail) error {
	c, err := s.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := s.authenticate(c); err != nil {
		return err
	}
	if err := c.SendMail(s.From, []string{m.To}, bytes.NewReader(s.message(m))); err != nil {
		return err
	}
	return c.Quit()
}

// connect opens a session, secured as the URL asks. With smtp:// it says
// EHLO first; if the server offers STARTTLS it starts again with it (the
// client cannot upgrade a session it has greeted).
func (s *SMTP) connect() (*smtp.Client, error) {
	tlsConfig := &tls.Config{ServerName: s.URL.Hostname(), RootCAs: s.RootCAs}
	conn, err := s.dial()
	if err != nil {
		return nil, err
	}
	if s.URL.Scheme == "smtps" {
		conn = tls.Client(conn, tlsConfig)
	}
	c := s.client(conn)
	if err := c.Hello(s.localName()); err != nil {
		c.Close()
		return nil, err
	}
	if ok, _ := c.Extension("STARTTLS"); !ok || s.URL.Scheme == "smtps" {
		return c, nil
	}
	c.Quit()
	if conn, err = s.dial(); err != nil {
		return nil, err
	}
	if c, err = smtp.NewClientStartTLS(conn, tlsConfig); err != nil {
		return nil, err
	}
	s.limit(c)
	if err := c.Hello(s.localName()); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// localName is the name the client gives in EHLO.
func (s *SMTP) localName() string {
	if s.Hostname == "" {
		return "localhost"
	}
	return s.Hostname
}

func (s *SMTP) dial() (net.Conn, error) {
	d := &net.Dialer{Timeout: s.Timeout}
	return d.Dial("tcp", s.URL.Host)
}

// client wraps conn in an SMTP client with the transport's time limits.
func (s *SMTP) client(conn net.Conn) *smtp.Client {
	c := smtp.NewClient(conn)
	s.limit(c)
	return c
}

func (s *SMTP) limit(c *smtp.Client) {
	c.CommandTimeout, c.SubmissionTimeout = s.Timeout, s.Timeout
}

// authenticate sends AUTH PLAIN when the URL has a user, and only over TLS
// (or to a loopback server): a password never crosses the network in clear.
func (s *SMTP) authenticate(c *smtp.Client) error {
	if s.URL.User == nil {
		return nil
	}
	_, secure := c.TLSConnectionState()
	if ip, err := netip.ParseAddr(s.URL.Hostname()); !secure && (err != nil || !ip.IsLoopback()) && s.URL.Hostname() != "localhost" {
		return errors.New("the SMTP server offers no TLS: refusing to send the password in clear")
	}
	pass, _ := s.URL.User.Password()
	return c.Auth(sasl.NewPlainClient("", s.URL.User.Username(), pass))
}

// message renders headers and body with CRLF line ends. The Message-ID is
// derived from the outbox row, so a mail sent again after a crash between
// the SMTP server's acceptance and our commit carries the same ID.
func (s *SMTP) message(m store.Mail) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\n", s.From, m.To, m.Subject)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <outbox-%d@%s>\r\n", time.Now().UTC().Format(time.RFC1123Z), m.ID, s.Hostname)
	if m.ListUnsubscribe != "" {
		// RFC 2369, and RFC 8058's one-click POST: the link acts only on POST.
		fmt.Fprintf(&b, "List-Unsubscribe: <%s>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", m.ListUnsubscribe)
	}
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
	l.Log.Info().Str("code", logcode.MailLogged).Time("event_time", time.Now()).Int64("mail", m.ID).
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
