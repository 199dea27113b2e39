// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/clientnet"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/resolve"
)

// RootHosts are the names under which the proxy serves its root's PEM to a
// plain GET through itself (amp.keychest.net as in the original).
var RootHosts = []string{"amp.keychest.invalid", "amp.keychest.net"}

// Time limits of the proxy.
const (
	connectTimeout = 30 * time.Second // for the CONNECT request (and the proxy's TLS)
	dialTimeout    = 10 * time.Second
)

// ProxyConfig is what the proxy needs.
type ProxyConfig struct {
	ACME     HostList       // hosts whose TLS is intercepted
	Allow    []netip.Prefix // client networks served
	Upstream *x509.CertPool // roots for ACME servers
	Observe  func(Exchange) // called with every intercepted exchange
	Log      zerolog.Logger
	Tunnel   TunnelPolicy     // CONNECTs off the ACME list; the zero policy tunnels none
	Resolver resolve.Resolver // every name the proxy looks up; nil: the system's
}

// Proxy is the forward proxy. It serves plain and TLS clients on one port.
type Proxy struct {
	cfg   ProxyConfig
	ca    *CA
	inner *http.Server  // serves intercepted connections
	conns *chanListener // feeds inner
	relay *relay
	acme  *acmeAddrs // the ACME hosts' addresses, refused as CONNECT targets

	mu      sync.Mutex
	ln      net.Listener
	closing bool
	active  map[net.Conn]struct{} // connections before CONNECT and tunnels
	wg      sync.WaitGroup
}

// NewProxy returns a proxy that mints its leaves with ca.
func NewProxy(cfg ProxyConfig, ca *CA) *Proxy {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	p := &Proxy{cfg: cfg, ca: ca, conns: newChanListener(), active: map[net.Conn]struct{}{}}
	p.acme = newACMEAddrs(cfg.Resolver, cfg.ACME)
	p.relay = newRelay(cfg)
	p.inner = &http.Server{Handler: p.relay, ReadHeaderTimeout: connectTimeout, IdleTimeout: 2 * time.Minute,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connInfoKey{}, c.(*tls.Conn).NetConn().(*interceptedConn).info)
		},
		ErrorLog: stdlog.New(connErrors{cfg.Log}, "", 0)}
	go p.inner.Serve(p.conns)
	return p
}

// Serve accepts clients on ln until Shutdown.
func (p *Proxy) Serve(ln net.Listener) error {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.isClosing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return err
		}
		if !p.track(c) {
			c.Close()
			continue
		}
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.handle(c)
		}()
	}
}

func (p *Proxy) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.active[c] = struct{}{}
	p.wg.Add(1) // under the lock: never after Shutdown began to wait
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.active, c)
	p.mu.Unlock()
}

// Shutdown stops accepting, lets intercepted requests and tunnels finish
// until ctx ends, then closes what is left.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	if p.ln != nil {
		p.ln.Close()
	}
	p.mu.Unlock()
	err := p.inner.Shutdown(ctx)
	if err != nil {
		p.inner.Close() // requests still in flight when ctx ended
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.mu.Lock()
		for c := range p.active {
			c.Close()
		}
		p.mu.Unlock()
		<-done
		err = ctx.Err()
	}
	p.relay.transport.CloseIdleConnections()
	return err
}

// handle reads one proxy request from a new client and acts on it.
func (p *Proxy) handle(c net.Conn) {
	client := remoteIP(c)
	if !clientnet.Within(client, p.cfg.Allow) {
		p.cfg.Log.Warn().Str("code", logcode.AMPOutsideAllow).Time("event_time", time.Now()).Str("remote", client.String()).Msg("client outside --allow refused")
		refuse(c, http.StatusForbidden, fmt.Sprintf("keychest-amp: client %s is not in the allowed networks (--allow)", client))
		c.Close()
		return
	}
	c.SetDeadline(time.Now().Add(connectTimeout))
	br := bufio.NewReader(c)
	if first, err := br.Peek(1); err == nil && first[0] == 0x16 { // a TLS handshake: an https:// proxy URL
		tc := tls.Server(&peekedConn{Conn: c, r: br}, &tls.Config{GetCertificate: p.proxyCert, NextProtos: []string{"http/1.1"}})
		if err := tc.Handshake(); err != nil {
			p.cfg.Log.Info().Str("code", logcode.AMPProxyTLSFailed).Time("event_time", time.Now()).Str("remote", client.String()).Err(err).Msg("TLS to the proxy failed")
			c.Close()
			return
		}
		c, br = tc, bufio.NewReader(tc)
	}
	req, err := http.ReadRequest(br)
	if err != nil {
		refuse(c, http.StatusBadRequest, "keychest-amp: expected an HTTP proxy request (CONNECT host:port)")
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	p.route(&peekedConn{Conn: c, r: br}, req, client)
}

func isRootHost(host string) bool {
	for _, h := range RootHosts {
		if host == h {
			return true
		}
	}
	return false
}

func remoteIP(c net.Conn) netip.Addr { return remoteIPOf(c.RemoteAddr()) }

func remoteIPOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// reply writes a whole HTTP response and nothing more.
func reply(c net.Conn, code int, contentType string, body []byte) {
	c.SetWriteDeadline(time.Now().Add(connectTimeout))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		code, http.StatusText(code), contentType, len(body))
	c.Write(body)
}

// refuse answers a proxy request with an error and a one-line text.
func refuse(c net.Conn, code int, text string) {
	reply(c, code, "text/plain; charset=utf-8", []byte(text+"\n"))
}

// peekedConn reads through the buffer that already holds what the client
// sent beyond the proxy request.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// connInfo is what the relay knows of an intercepted connection.
type connInfo struct {
	client netip.Addr
	target string // host:port, host lowercased
	host   string
}

type connInfoKey struct{}

// interceptedConn carries the CONNECT's details into the relay's server.
type interceptedConn struct {
	net.Conn
	info connInfo
}

// chanListener is a listener fed by the proxy with intercepted connections.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// connErrors takes the errors of intercepted connections (a client that
// does not trust the root fails its handshake) into the operational log.
type connErrors struct{ log zerolog.Logger }

func (w connErrors) Write(p []byte) (int, error) {
	w.log.Info().Str("code", logcode.AMPInterceptFailed).Time("event_time", time.Now()).Str("error", strings.TrimSpace(string(p))).
		Msg("intercepted connection failed")
	return len(p), nil
}
