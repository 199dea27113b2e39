// SPDX-License-Identifier: Apache-2.0

package certtest

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// Server is a TLS server on loopback whose certificate can be swapped
// while it runs. It completes each handshake and closes the connection,
// counting the handshakes.
type Server struct {
	ln         net.Listener
	cert       atomic.Pointer[tls.Certificate]
	Accepts    atomic.Int64 // connections accepted
	Handshakes atomic.Int64 // handshakes completed
	wg         sync.WaitGroup
}

// Serve listens on addr ("127.0.0.2:0", say) and serves cert.
func Serve(addr string, cert tls.Certificate) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln}
	s.cert.Store(&cert)
	cfg := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil }}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.Accepts.Add(1)
			go func() {
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					s.Handshakes.Add(1)
				}
				tc.Close()
			}()
		}
	}()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() *net.TCPAddr { return s.ln.Addr().(*net.TCPAddr) }

// Port is the listening port.
func (s *Server) Port() int { return s.Addr().Port }

// Swap replaces the certificate for the next handshakes.
func (s *Server) Swap(cert tls.Certificate) { s.cert.Store(&cert) }

// Close stops listening.
func (s *Server) Close() { s.ln.Close(); s.wg.Wait() }

// ServeBytes serves body at every path over plain HTTP on addr (a CRL,
// say), and returns the server's base URL and a function to replace body.
func ServeBytes(addr string, body []byte) (string, func([]byte), func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, nil, err
	}
	var cur atomic.Pointer[[]byte]
	cur.Store(&body)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(*cur.Load())
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func(b []byte) { cur.Store(&b) }, func() { srv.Close() }, nil
}

// PlainServer accepts connections and answers each with a line of plain
// text: a port that speaks something other than TLS.
type PlainServer struct{ ln net.Listener }

// ServePlain starts a PlainServer on addr.
func ServePlain(addr string) (*PlainServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	return &PlainServer{ln: ln}, nil
}

// Port is the listening port.
func (p *PlainServer) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Close stops listening.
func (p *PlainServer) Close() { p.ln.Close() }
