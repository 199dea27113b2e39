// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/netguard"
)

// route answers a proxy request: CONNECT (intercepted, tunnelled or
// refused), or the root's PEM.
func (p *Proxy) route(c net.Conn, req *http.Request, client netip.Addr) {
	if req.Method != http.MethodConnect {
		defer c.Close()
		host := strings.ToLower(req.URL.Hostname())
		if (req.Method == http.MethodGet || req.Method == http.MethodHead) && isRootHost(host) {
			reply(c, http.StatusOK, "application/x-pem-file", p.ca.PEM())
			return
		}
		refuse(c, http.StatusMethodNotAllowed, "keychest-amp: only CONNECT is proxied (and GET http://amp.keychest.invalid/ gives the root certificate)")
		return
	}
	host, port, ok := connectTarget(req.Host)
	if !ok {
		refuse(c, http.StatusBadRequest, "keychest-amp: CONNECT needs host:port")
		c.Close()
		return
	}
	info := connInfo{client: client, target: net.JoinHostPort(host, strconv.Itoa(port)), host: host}
	switch {
	case p.cfg.ACME.Has(host, port):
		p.intercept(c, info)
	case p.cfg.ACME.HasName(host):
		p.cfg.Log.Warn().Str("code", logcode.AMPPortRefused).Time("event_time", time.Now()).Str("remote", client.String()).Str("target", info.target).Msg("CONNECT to an unlisted port of an ACME host refused")
		refuse(c, http.StatusForbidden, fmt.Sprintf("keychest-amp: port %d of ACME host %s is not on the list (--acme-host %s:%d adds it)", port, host, host, port))
		c.Close()
	default:
		defer c.Close()
		if p.mayTunnel(c, info, port) {
			p.tunnel(c, info, port)
		}
	}
}

// connectTarget reads a CONNECT's host:port. The host is lowercased and
// loses its trailing dots: "ACME-v02.api.letsencrypt.org." is the ACME
// host it names.
func connectTarget(hostport string) (host string, port int, ok bool) {
	host, portText, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, false
	}
	port, err = strconv.Atoi(portText)
	host = canonicalHost(host)
	return host, port, err == nil && host != "" && port > 0 && port <= 65535
}

// mayTunnel checks a CONNECT off the ACME list against --tunnel-ports,
// --tunnel-nets (for an address; a name's addresses are checked as they
// are dialled) and the ACME hosts' addresses, and refuses it with 403
// when one says no.
func (p *Proxy) mayTunnel(c net.Conn, info connInfo, port int) bool {
	if numericName(info.host) {
		p.tunnelRefused(c, info, errNumericName)
		return false
	}
	err := p.cfg.Tunnel.check(info.host, port)
	if err != nil {
		p.tunnelRefused(c, info, err)
		return false
	}
	ip, perr := netip.ParseAddr(info.host)
	if perr != nil {
		return true
	}
	acme, isACME := p.acme.owner(context.Background(), ip)
	if !isACME {
		return true
	}
	p.cfg.Log.Warn().Str("code", logcode.AMPACMEAddress).Time("event_time", time.Now()).Str("remote", info.client.String()).
		Str("target", info.target).Str("acme_host", acme).Msg("CONNECT to an ACME host's address refused")
	refuse(c, http.StatusForbidden, fmt.Sprintf("keychest-amp: %s is an address of ACME host %s: CONNECT to the name (%s:%d), so the proxy sees the traffic",
		info.host, acme, acme, port))
	return false
}

// tunnelRefused answers a tunnel the policy refused with 403.
func (p *Proxy) tunnelRefused(c net.Conn, info connInfo, err error) {
	p.cfg.Log.Warn().Str("code", logcode.AMPTunnelRefused).Time("event_time", time.Now()).Str("remote", info.client.String()).
		Str("target", info.target).Err(err).Msg("tunnel refused")
	text := fmt.Sprintf("keychest-amp: %s is not tunnelled: %v", info.target, err)
	if errors.Is(err, netguard.ErrNotAllowed) {
		text = fmt.Sprintf("keychest-amp: %s is not tunnelled: not a public address (loopback, private, link-local, metadata or reserved); --tunnel-nets allows such networks", info.target)
	}
	refuse(c, http.StatusForbidden, text)
}

// proxyCert is the proxy's own certificate for an https:// proxy URL: for
// the name the client asked for, or else the address it connected to. A
// name or address off the root's scope gets no leaf: the handshake fails.
func (p *Proxy) proxyCert(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hello.ServerName
	if name == "" {
		name = remoteIPOf(hello.Conn.LocalAddr()).String()
	}
	leaf, err := p.ca.Leaf(name)
	if errors.Is(err, ErrOutOfScope) {
		p.cfg.Log.Warn().Str("code", logcode.AMPNameOutOfScope).Time("event_time", time.Now()).
			Str("remote", remoteIPOf(hello.Conn.RemoteAddr()).String()).Str("name", clip(name, 255)).Msg("proxy TLS for a name out of scope refused")
	}
	return leaf, err
}

// clip cuts s to at most n bytes, for a log.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// intercept terminates the client's TLS with a minted leaf and hands the
// connection to the relay's HTTP server.
func (p *Proxy) intercept(c net.Conn, info connInfo) {
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.Close()
		return
	}
	leaf, err := p.ca.Leaf(info.host)
	if err != nil {
		p.cfg.Log.Error().Str("code", logcode.AMPMintFailed).Time("event_time", time.Now()).Str("target", info.target).Err(err).Msg("cannot mint a leaf")
		c.Close()
		return
	}
	tc := tls.Server(&interceptedConn{Conn: c, info: info}, &tls.Config{Certificates: []tls.Certificate{*leaf}, NextProtos: []string{"http/1.1"}})
	if !p.conns.push(tc) {
		c.Close()
	}
}

// tunnel copies bytes both ways between the client and target, untouched.
// Each address of the target is checked by the policy's guard on the
// socket itself, as it is dialled.
func (p *Proxy) tunnel(c net.Conn, info connInfo, port int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*dialTimeout)
	up, err := dialResolved(ctx, p.cfg.Resolver, p.cfg.Tunnel.dialer(), info.host, port)
	cancel()
	if errors.Is(err, netguard.ErrNotAllowed) {
		p.tunnelRefused(c, info, err)
		return
	}
	if err != nil {
		refuse(c, http.StatusBadGateway, fmt.Sprintf("keychest-amp: cannot reach %s: %v", info.target, err))
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	p.mu.Lock()
	p.active[up] = struct{}{}
	p.mu.Unlock()
	defer p.untrack(up)
	if pc, ok := c.(*peekedConn); ok && pc.r.Buffered() == 0 {
		c = pc.Conn // plain TCP both ways: the kernel splices, no buffers here
	}
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		closeWrite(up)
		close(done)
	}()
	io.Copy(c, up)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	if pc, ok := c.(*peekedConn); ok {
		closeWrite(pc.Conn)
		return
	}
	c.Close()
}
