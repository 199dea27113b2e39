// SPDX-License-Identifier: Apache-2.0

// Package smtptest is a real SMTP server for tests, built on
// github.com/emersion/go-smtp: it listens on loopback, keeps every message
// it accepts, can be stopped and started again on the same port to play
// a mail server that is down, and can refuse recipients with a 4xx or 5xx
// reply to play one that rejects mail.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one accepted mail.
type Message struct {
	From string
	To   []string
	Data string // headers and body as received, CRLF line ends
	TLS  bool   // the session ran over TLS (STARTTLS)
	User string // who authenticated (AUTH PLAIN), if anyone
}

// Body returns the message's body with LF line ends.
func (m Message) Body() string {
	_, body, _ := strings.Cut(m.Data, "\r\n\r\n")
	return strings.ReplaceAll(body, "\r\n", "\n")
}

// Header returns the first value of a header, or "".
func (m Message) Header(name string) string {
	head, _, _ := strings.Cut(m.Data, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Server is the receiver.
type Server struct {
	Addr string
	// RootCAs trusts the server's certificate (StartTLS only).
	RootCAs *x509.CertPool

	tls *tls.Config

	mu       sync.Mutex
	messages []Message
	reject   *smtp.SMTPError // the answer to every RCPT while set
	rejected int
	arrived  chan struct{}
	srv      *smtp.Server
	ln       net.Listener
}

// Start listens on a free loopback port; the server stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, &Server{arrived: make(chan struct{}, 100)})
}

// StartTLS is Start with STARTTLS offered, under a certificate for
// 127.0.0.1 that RootCAs trusts, and AUTH PLAIN once TLS is on.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	cert, roots, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return start(t, &Server{arrived: make(chan struct{}, 100), RootCAs: roots,
		tls: &tls.Config{Certificates: []tls.Certificate{cert}}})
}

func start(t testing.TB, s *Server) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	s.serve(l)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) serve(l net.Listener) {
	srv := smtp.NewServer(s)
	srv.Domain = "smtptest.localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.TLSConfig = s.tls
	s.mu.Lock()
	s.srv, s.ln = srv, l
	s.mu.Unlock()
	go srv.Serve(l)
}

// Stop closes the listener and every session: the mail server is down.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		ln.Close() // ours to close: Serve may not have registered it yet
		srv.Close()
	}
}

// Restart listens again on the same address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	s.serve(l)
}

// Messages returns what was received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Wait waits until n messages have arrived, or fails the test after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if msgs := s.Messages(); len(msgs) >= n {
			return msgs
		}
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("%d messages arrived in %s, want %d", len(s.Messages()), timeout, n)
		}
	}
}

// Reject makes the server answer every recipient with code and text (a
// 4xx: try again later; a 5xx: never), until Accept.
func (s *Server) Reject(code int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: text}
}

// Accept makes the server take mail again.
func (s *Server) Accept() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = nil
}

// Rejected reports how many recipients were refused so far.
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: s, conn: c}, nil
}

type session struct {
	srv  *Server
	conn *smtp.Conn
	user string
	msg  Message
}

// AuthMechanisms implements smtp.AuthSession: go-smtp offers them only
// over TLS.
func (x *session) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth takes any user and password.
func (x *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, _ string) error {
		x.user = user
		return nil
	}), nil
}

func (x *session) Reset()        { x.msg = Message{} }
func (x *session) Logout() error { return nil }

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.msg.From = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.srv.mu.Lock()
	defer x.srv.mu.Unlock()
	if x.srv.reject != nil {
		x.srv.rejected++
		return x.srv.reject
	}
	x.msg.To = append(x.msg.To, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.msg.Data = string(b)
	_, x.msg.TLS = x.conn.TLSConnectionState()
	x.msg.User = x.user
	x.srv.mu.Lock()
	x.srv.messages = append(x.srv.messages, x.msg)
	x.srv.mu.Unlock()
	select {
	case x.srv.arrived <- struct{}{}:
	default:
	}
	return nil
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtptest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, roots, nil
}
