// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// conn is the state of one connection. While the connection is in the
// event loop only the loop goroutine touches it, except for the fields
// marked otherwise; once detached, only its session goroutine does.
type conn struct {
	srv    *Server
	loop   evloop.Conn
	remote netip.Addr
	framer Framer

	openedAt   time.Time
	lastActive time.Time
	counted    bool      // admitted by the connection limits, and not yet released
	lingers    bool      // refused, and counted in Server.lingering until closed
	proxyDone  bool      // the start of the input was checked for a PROXY header (proxy.go)
	headerAt   time.Time // first byte of a trusted proxy's unfinished PROXY header

	// Loop side. Once Close or Detach is decided the loop does not call
	// Data again.
	action       evloop.Action
	loopOut      int           // bytes the loop has written on this connection
	handoffOut   []byte        // output for the session to write first
	handoff      *Request      // the blocking request that made the loop detach
	handoffClose bool          // close once handoffOut is written
	inflight     evloop.Paused // the blocking request answered straight to the socket (async.go)
	timer        *time.Timer

	mu sync.Mutex // guards nc
	nc net.Conn   // set once detached
}

// loopSide is the Server as the event loop's evloop.Handler.
type loopSide struct{ s *Server }

// Serving implements evloop.Handler.
func (h loopSide) Serving(addrs []net.Addr) {
	h.s.addrs = addrs
	h.s.addr <- addrs[0]
}

// Open implements evloop.Handler: the connection limits admit or refuse
// it, and its timer starts.
func (h loopSide) Open(lc evloop.Conn, addr net.Addr) (evloop.Session, []byte, evloop.Action) {
	s, now := h.s, time.Now()
	c := &conn{srv: s, loop: lc, remote: remoteAddr(addr), openedAt: now, lastActive: now}
	c.framer.max = s.cfg.MaxLine
	if err := s.limits.acquire(c); err != nil {
		s.logRefused(c.remote, err.Text, now)
		out, action := c.refuse(Fail(err))
		return c, out, action
	}
	c.counted = true
	// Checked after acquire: a Shutdown that began before this line sees
	// the connection in its list, or this sees draining set.
	if s.draining.Load() {
		s.release(c)
		out, action := c.refuse(Fail(Errorf(CodeUnavailable, "server shutting down, retry shortly")))
		return c, out, action
	}
	c.timer = time.AfterFunc(s.cfg.IdleTimeout, c.loop.Wake)
	return c, nil, evloop.None
}

// refuse answers a connection the server does not admit with r and closes
// it, through a session that closes gracefully (see closeGracefully) while
// fewer than Config.LingeringRefusals do so. Refused connections are not
// counted by the limits, so beyond that the loop closes them at once: the
// descriptors must not run out (the loop stops on EMFILE: evio defect 4).
func (c *conn) refuse(r Reply) ([]byte, evloop.Action) {
	if c.srv.lingering.Add(1) <= int32(c.srv.cfg.LingeringRefusals) {
		c.lingers = true
		c.handoffOut, c.handoffClose = r.Bytes(), true
		c.action = evloop.Detach
		return nil, evloop.Detach
	}
	c.srv.lingering.Add(-1)
	c.action = evloop.Close
	return r.Bytes(), evloop.Close
}

// Data implements evloop.Session: in holds bytes read from the client, or
// is nil when the connection was woken by its timer, by a shutdown, or by
// whoever answered its request in flight (async.go).
func (c *conn) Data(in []byte) ([]byte, evloop.Action) {
	now := time.Now()
	if in != nil {
		c.lastActive = now
		c.framer.Write(in)
	}
	if c.inflight != nil && !c.settleInflight() {
		return nil, c.action // still running (None), or its reply ends the connection (Detach)
	}
	// A wake with nothing new to answer: no input, or only part of a
	// trusted proxy's PROXY header.
	if in == nil && (c.framer.Buffered() == 0 || c.awaitsHeader()) {
		if r, over := c.mustEnd(now); over {
			return c.emit(r.Bytes(), evloop.Close, true)
		}
		c.rearm(now)
		return nil, evloop.None
	}
	if !c.proxyDone {
		if out, action, wait := c.proxyHeader(now); wait || action != evloop.None {
			return out, action
		}
	}
	out := c.answerInline(nil)
	if c.action == evloop.None && c.inflight == nil && c.framer.Partial() {
		// The loop closes at once when it reads EOF, so a line the client ends
		// by half-closing (or by a quiet period) is finished by a session.
		c.action = evloop.Detach
	}
	c.rearm(now)
	return c.emit(out, c.action, in == nil)
}

// settleInflight reports whether the request in flight is answered and
// the connection reading again (evloop.Paused.Settle), and forgets the
// request if so. A reply that ends the connection closes it through a
// session (closeGracefully).
func (c *conn) settleInflight() bool {
	done, closing := c.inflight.Settle()
	if !done {
		return false
	}
	c.inflight = nil
	if closing {
		c.handoffClose = true
		c.action = evloop.Detach
	}
	return c.action == evloop.None
}

// emit returns output and an action to the loop, or hands both to a
// session when the loop could lose or stall on them: on a wake while
// earlier output may still be queued (evloop.Conn.OutputQueued), or past
// the output budget. Output followed by a close always goes to a session:
// the loop closes at once, and a close with unread input sends a reset
// that can destroy the reply (see closeGracefully).
func (c *conn) emit(out []byte, action evloop.Action, onWake bool) ([]byte, evloop.Action) {
	if len(out) > 0 && (action == evloop.Close || (onWake && c.loop.OutputQueued()) || c.loopOut+len(out) > loopOutputBudget) {
		c.handoffOut = append(c.handoffOut, out...)
		c.handoffClose = action == evloop.Close
		c.action = evloop.Detach
		return nil, evloop.Detach
	}
	c.action = action
	c.loopOut += len(out)
	return out, action
}

// answerInline answers the complete lines buffered, in order, as long as
// they need no blocking work and their replies fit in the loop's output
// budget. At the first blocking request, or once the budget is spent, it
// stops and decides to detach; the session answers the rest one reply at a
// time, reading no more from the client until each reply is written. So a
// client that pipelines without reading makes the server hold at most the
// budget and one reply of output, never the replies to all it sent.
func (c *conn) answerInline(out []byte) []byte {
	for c.action == evloop.None {
		if c.loopOut+len(out) >= loopOutputBudget && c.framer.Buffered() > 0 {
			c.action = evloop.Detach
			break
		}
		req, r, ok := c.next(false)
		if !ok {
			break
		}
		if r == nil && c.srv.handler.Blocking(&req) {
			if len(out) == 0 && c.startInflight(&req) {
				break
			}
			c.handoff = &req
			c.action = evloop.Detach
			break
		}
		reply := c.serve(&req, r)
		r = &reply
		out = r.AppendTo(out)
		if r.close {
			c.action = evloop.Close
		}
	}
	return out
}

// serve answers one request on the calling goroutine, or passes through
// r, the reply to a malformed line. Blocking requests wait for a worker;
// the others run here, with a panic turned into a 500. Every command gets
// one log entry.
func (c *conn) serve(req *Request, r *Reply) Reply {
	start := time.Now()
	var reply Reply
	switch {
	case r != nil:
		reply = *r
		if req.Verb == "" {
			req = &Request{Verb: "-"}
		}
	case c.srv.handler.Blocking(req):
		reply = c.srv.pool.do(req)
	default:
		reply = serveSafely(context.Background(), c.srv.handler, req, c.srv.log)
	}
	c.srv.logCommand(c.remote, req, reply, start)
	return reply
}

// next returns the next request to run, or a reply to send instead when
// the line is malformed (or, first on a connection from a peer that is not
// a trusted proxy, a PROXY header: untrustedStart). With flush, an
// unfinished line counts as complete. It reports false when no line is
// ready.
func (c *conn) next(flush bool) (Request, *Reply, bool) {
	if !c.proxyDone { // a trusted proxy's connection is done before any line
		if r, wait := c.untrustedStart(flush); wait || r != nil {
			return Request{Verb: "PROXY"}, r, r != nil
		}
	}
	for {
		line, ok, ferr := c.framer.Next()
		if ferr != nil {
			r := Fail(ferr).closing()
			return Request{}, &r, true
		}
		if !ok {
			if !flush || !c.framer.Partial() {
				return Request{}, nil, false
			}
			line = c.framer.TakePartial()
		}
		req, perr := ParseLine(line)
		if perr != nil {
			r := Fail(perr)
			return Request{}, &r, true
		}
		if req.Verb != "" { // blank lines are skipped
			req.Remote, req.Read = c.remote, time.Now()
			return req, nil, true
		}
	}
}

// interrupt makes the connection notice that the server is shutting down.
func (c *conn) interrupt() {
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc != nil {
		nc.SetReadDeadline(time.Now())
		return
	}
	c.loop.Wake()
}

// closeSession closes a detached connection's socket, which ends its
// session at its next read or write. Connections in the loop are left to
// the loop, which closes them when it stops.
func (c *conn) closeSession() {
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

// release uncounts c, once, if the connection limits admitted it.
func (s *Server) release(c *conn) {
	if !c.counted {
		return
	}
	c.counted = false
	s.limits.release(c)
}
