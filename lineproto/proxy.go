// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/keychest/keychest-lined/internal/clientnet"
	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// maxProxyV1 is the longest PROXY v1 header, CRLF included (the spec's 107).
const maxProxyV1 = 107

// DefaultProxyHeaderTimeout is how long a trusted proxy has, from the first
// byte it sends, to finish its PROXY header (Config.ProxyHeaderTimeout).
// HAProxy and AWS NLB write the header in one piece, so it needs no more.
const DefaultProxyHeaderTimeout = 5 * time.Second

// The PROXY protocol header (HAProxy, AWS NLB) is the first bytes of a
// connection a load balancer opens for a client: it carries the client's
// address. Only a peer in Config.ProxyFrom may send one, and only there
// does the loop look for it, before any line. HAProxy writes it in one
// piece, so it is normally whole in the first read; if not, the loop keeps
// the bytes and waits for the rest, owing nothing meanwhile, until the
// header deadline (headerMustEnd). The input of any other peer is framed as
// lines from its first byte, with one check on its first bytes
// (untrustedStart): a whole signature there is a 400 and a close (a proxy
// that should have been trusted, or a client trying to pass another
// address).

// proxyHeader takes a trusted proxy's PROXY header at the start of the
// input, in the loop. It reports wait while the header is incomplete, or
// the output and action that end the connection when it is refused.
func (c *conn) proxyHeader(now time.Time) ([]byte, evloop.Action, bool) {
	wait, r := c.takeProxyHeader(now)
	if r == nil {
		c.rearm(now)
		return nil, evloop.None, wait
	}
	c.srv.logCommand(c.remote, &Request{Verb: "PROXY"}, *r, now)
	if !c.counted { // over a per-address limit of the carried address
		out, action := c.refuse(*r)
		c.rearm(now)
		return out, action, false
	}
	out, action := c.emit(r.Bytes(), evloop.Close, false)
	c.rearm(now)
	return out, action, false
}

// takeProxyHeader looks at the start of a trusted proxy's connection for a
// PROXY header. It reports wait when the bytes buffered may still become
// one, and a reply that ends the connection when the header is malformed.
// Its source address becomes c.remote (see rekey). It leaves the input of
// any other peer to the framing (untrustedStart).
func (c *conn) takeProxyHeader(now time.Time) (wait bool, r *Reply) {
	buf := c.framer.buf
	if !c.srv.trustsProxy(c.remote) {
		return false, nil
	}
	switch {
	case proxySignaturePrefix(buf):
		return c.headerWaits(now), nil
	case !proxySigned(buf):
		c.proxyDone = true
		return false, nil
	}
	n := proxyHeaderLen(buf)
	if n < 0 {
		return c.headerWaits(now), nil
	}
	c.proxyDone = true
	addr, err := parseProxyHeader(buf[:n])
	c.framer.buf = buf[n:]
	if err != nil {
		return false, closingReply(err)
	}
	if addr.IsValid() {
		if err := c.srv.rekey(c, addr); err != nil {
			return false, closingReply(err)
		}
	}
	return false, nil
}

// untrustedStart checks the first bytes of a connection from a peer that
// is not a trusted proxy (conn.next calls it until it decides): a whole
// signature gets a reply that refuses it and ends the connection. It
// reports wait while they are none or a proper prefix of a signature: they
// wait as the rest of an unfinished line does, until more bytes come, the
// quiet period passes or the client half-closes (flush), and the idle
// timeout and lifetime apply.
func (c *conn) untrustedStart(flush bool) (r *Reply, wait bool) {
	buf := c.framer.buf
	switch {
	case len(buf) == 0 || !flush && proxySignaturePrefix(buf):
		return nil, true
	case proxySigned(buf):
		c.proxyDone = true
		return closingReply(Errorf(CodeBadRequest, "PROXY header from %s, which is not a trusted proxy", c.remote)), false
	}
	c.proxyDone = true
	return nil, false
}

// headerWaits starts the header's deadline at its first byte, and reports
// true: the loop waits for the rest.
func (c *conn) headerWaits(now time.Time) bool {
	if c.headerAt.IsZero() {
		c.headerAt = now
	}
	return true
}

// awaitsHeader reports whether the loop waits for the rest of a trusted
// proxy's PROXY header.
func (c *conn) awaitsHeader() bool { return !c.proxyDone && !c.headerAt.IsZero() }

// headerDeadline is when a trusted proxy's unfinished PROXY header must be
// complete, and false when no header is awaited.
func (c *conn) headerDeadline() (time.Time, bool) {
	if !c.awaitsHeader() {
		return time.Time{}, false
	}
	timeout := c.srv.cfg.ProxyHeaderTimeout
	if timeout <= 0 {
		timeout = DefaultProxyHeaderTimeout
	}
	return c.headerAt.Add(timeout), true
}

// headerMustEnd reports whether a connection whose PROXY header is still
// unfinished must end now, and the reply that ends it: the server is
// shutting down, or the header deadline passed.
func (c *conn) headerMustEnd(now time.Time) (Reply, bool) {
	deadline, waiting := c.headerDeadline()
	switch {
	case !waiting:
		return Reply{}, false
	case c.srv.draining.Load():
		return Fail(Errorf(CodeUnavailable, "server shutting down, retry shortly")), true
	case !now.Before(deadline):
		return Fail(Errorf(CodeTimeout, "PROXY header not complete within %s", deadline.Sub(c.headerAt))), true
	}
	return Reply{}, false
}

// trustsProxy reports whether a PROXY header from addr is believed.
func (s *Server) trustsProxy(addr netip.Addr) bool {
	return clientnet.Within(addr, s.cfg.ProxyFrom)
}

// rekey moves c to the address its PROXY header carries, in the
// per-address connection limits too.
func (s *Server) rekey(c *conn, addr netip.Addr) *Error {
	s.release(c)
	c.remote = addr
	if err := s.limits.acquire(c); err != nil {
		return err
	}
	c.counted = true
	return nil
}

func closingReply(err *Error) *Reply {
	r := Fail(err).closing()
	return &r
}

// proxySignaturePrefix reports whether buf is a proper prefix of a PROXY
// signature: more bytes decide whether a header starts here.
func proxySignaturePrefix(buf []byte) bool {
	isPrefix := func(sig []byte) bool { return len(buf) < len(sig) && bytes.HasPrefix(sig, buf) }
	return isPrefix(proxyproto.SIGV1) || isPrefix(proxyproto.SIGV2)
}

// proxySigned reports whether buf starts with a whole PROXY signature.
func proxySigned(buf []byte) bool {
	return bytes.HasPrefix(buf, proxyproto.SIGV1) || bytes.HasPrefix(buf, proxyproto.SIGV2)
}

// proxyHeaderLen returns the length of the signed header at the start of
// buf, or -1 while it is not all there. A v1 header without its LF within
// maxProxyV1 bytes is cut there, for the parser to refuse.
func proxyHeaderLen(buf []byte) int {
	if bytes.HasPrefix(buf, proxyproto.SIGV1) {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && i < maxProxyV1 {
			return i + 1
		}
		if len(buf) >= maxProxyV1 {
			return maxProxyV1
		}
		return -1
	}
	if len(buf) < 16 {
		return -1
	}
	n := 16 + int(binary.BigEndian.Uint16(buf[14:16]))
	if len(buf) < n {
		return -1
	}
	return n
}

// parseProxyHeader reads a whole header. It returns the client's address,
// or no address for a header that carries none (v2 LOCAL, as in health
// checks, and v1 UNKNOWN): the connection then keeps the socket's.
func parseProxyHeader(hdr []byte) (netip.Addr, *Error) {
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(hdr), len(hdr)))
	if err != nil {
		return netip.Addr{}, Errorf(CodeBadRequest, "malformed PROXY header: %v", err)
	}
	if h.Command.IsLocal() || h.TransportProtocol.IsUnspec() {
		return netip.Addr{}, nil
	}
	src, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, Errorf(CodeBadRequest, "PROXY header without a TCP source address")
	}
	addr, _ := netip.AddrFromSlice(src.IP)
	return addr.Unmap(), nil
}
