package lineproto

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/evio"
)

// rewakeAfter is how long a wake may go unanswered before it is sent again.
// evio can lose a wake that lands while its loop drains the wake queue; the
// loop would then only see it at its 100 ms epoll timeout.
const (
	rewakeAfter = 2 * time.Millisecond
	maxRewakes  = 50
)

// conn is the state of one connection. While the connection is in the
// event loop only the loop goroutine touches it, except for the fields
// marked otherwise; once detached, only its session goroutine does.
type conn struct {
	srv    *Server
	ec     evio.Conn
	remote netip.Addr
	framer Framer

	openedAt   time.Time
	lastActive time.Time
	counted    bool      // admitted by the connection limits, and not yet released
	lingers    bool      // refused, and counted in Server.lingering until closed
	proxyDone  bool      // the start of the input was checked for a PROXY header (proxy.go)
	headerAt   time.Time // first byte of a trusted proxy's unfinished PROXY header

	// Loop side. evio overwrites its pending output and action on every
	// wake, so both are kept here: once Close or Detach is decided it is
	// returned again on every later callback.
	action       evio.Action
	outPending   bool      // output returned to evio that it may not have written yet
	loopOut      int       // bytes the loop has written on this connection
	handoffOut   []byte    // output for the session to write first
	handoff      *Request  // the blocking request that made the loop detach
	handoffClose bool      // close once handoffOut is written
	inflight     *inflight // the blocking request a worker answers for the loop
	lost         bool      // out of evio's epoll set for good (see watchAgain)
	timer        *time.Timer

	wakePending atomic.Bool // a wake was sent and Data(nil) has not run since
	gone        atomic.Bool // the loop no longer has the connection: no more wakes

	mu sync.Mutex // guards nc
	nc net.Conn   // set once detached
}

func (s *Server) opened(ec evio.Conn) ([]byte, evio.Options, evio.Action) {
	now := time.Now()
	c := &conn{srv: s, ec: ec, remote: remoteAddr(ec.RemoteAddr()), openedAt: now, lastActive: now}
	c.framer.max = s.cfg.MaxLine
	ec.SetContext(c)
	opts := evio.Options{ReuseInputBuffer: true}
	if err := s.limits.acquire(c); err != nil {
		s.logRefused(c.remote, err.Text, now)
		out, action := c.refuse(Fail(err))
		return out, opts, action
	}
	c.counted = true
	// Checked after acquire: a Shutdown that began before this line sees
	// the connection in its list, or this sees draining set.
	if s.draining.Load() {
		s.release(c)
		out, action := c.refuse(Fail(Errorf(CodeUnavailable, "server shutting down, retry shortly")))
		return out, opts, action
	}
	c.timer = time.AfterFunc(s.cfg.IdleTimeout, c.fire)
	return nil, opts, evio.None
}

// refuse answers a connection the server does not admit with r and closes
// it, through a session that closes gracefully (see closeGracefully) while
// fewer than Config.LingeringRefusals do so. Refused connections are not
// counted by the limits, so beyond that the loop closes them at once: the
// descriptors must not run out (evio stops on EMFILE).
func (c *conn) refuse(r Reply) ([]byte, evio.Action) {
	if c.srv.lingering.Add(1) <= int32(c.srv.cfg.LingeringRefusals) {
		c.lingers = true
		c.handoffOut, c.handoffClose = r.Bytes(), true
		c.action = evio.Detach
		return nil, evio.Detach
	}
	c.srv.lingering.Add(-1)
	c.action = evio.Close
	return r.Bytes(), evio.Close
}

// data is evio's Data callback: in holds bytes read from the client, or is
// nil when the connection was woken by its timer or by the worker that
// answered its request in flight (async.go).
func (s *Server) data(ec evio.Conn, in []byte) ([]byte, evio.Action) {
	c := ec.Context().(*conn)
	if c.action != evio.None || c.lost {
		return nil, c.action
	}
	now := time.Now()
	if in == nil {
		c.wakePending.Store(false)
	} else {
		c.outPending = false // evio reads only once it has written all output
		c.lastActive = now
		c.framer.Write(in)
	}
	if c.inflight != nil && !c.settleInflight() {
		if c.action == evio.Detach {
			return nil, evio.Detach // its reply ends the connection
		}
		return nil, evio.None // still running: nothing may go to evio
	}
	// A wake with nothing new to answer: no input, or only part of a
	// trusted proxy's PROXY header.
	if in == nil && (c.framer.Buffered() == 0 || c.awaitsHeader()) {
		if r, over := c.ending(now); over {
			return c.emit(r.Bytes(), evio.Close, true)
		}
		c.rearm(now)
		return nil, evio.None
	}
	if !c.proxyDone {
		if out, action, wait := c.proxyHeader(now); wait || action != evio.None {
			return out, action
		}
	}
	out := c.answerInline(nil)
	if c.action == evio.None && c.inflight == nil && c.framer.Partial() {
		// evio closes at once when it reads EOF, so a line the client ends
		// by half-closing (or by a quiet period) is finished by a session.
		c.action = evio.Detach
	}
	c.rearm(now)
	return c.emit(out, c.action, in == nil)
}

// settleInflight reports whether the request in flight is answered and
// the connection back in evio's epoll set (async.go), and forgets the
// request if so. A reply that ends the connection closes it through a
// session (closeGracefully).
func (c *conn) settleInflight() bool {
	f := c.inflight
	done, closing, watched := f.over()
	if !done {
		return false
	}
	c.inflight = nil
	if !watched && !c.watchAgain(f) {
		c.lost = true // evio would fail on the descriptor: it closes it when it stops
		return false
	}
	if closing {
		c.handoffClose = true
		c.action = evio.Detach
	}
	return c.action == evio.None
}

// emit returns output and an action to evio, or hands both to a session
// when evio could lose or stall on them: on a wake while earlier output may
// still be pending (evio would overwrite it), or past the output budget.
// Output followed by a close always goes to a session: evio closes at once,
// and a close with unread input sends a reset that can destroy the reply
// (see closeGracefully).
func (c *conn) emit(out []byte, action evio.Action, onWake bool) ([]byte, evio.Action) {
	if len(out) > 0 && (action == evio.Close || (onWake && c.outPending) || c.loopOut+len(out) > loopOutputBudget) {
		c.handoffOut = append(c.handoffOut, out...)
		c.handoffClose = action == evio.Close
		c.action = evio.Detach
		return nil, evio.Detach
	}
	c.action = action
	if len(out) > 0 {
		c.outPending = true
		c.loopOut += len(out)
	}
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
	for c.action == evio.None {
		if c.loopOut+len(out) >= loopOutputBudget && c.framer.Buffered() > 0 {
			c.action = evio.Detach
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
			c.action = evio.Detach
			break
		}
		reply := c.serve(&req, r)
		r = &reply
		out = r.AppendTo(out)
		if r.close {
			c.action = evio.Close
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

// ending returns the reply that ends the connection now, if any: the
// server is shutting down (and no line is half received), or the lifetime,
// idle or PROXY header deadline passed.
func (c *conn) ending(now time.Time) (Reply, bool) {
	cfg := c.srv.cfg
	switch {
	case c.srv.draining.Load() && !c.framer.Partial():
		return Fail(Errorf(CodeUnavailable, "server shutting down, retry shortly")), true
	case now.Sub(c.openedAt) >= cfg.MaxLifetime:
		return Fail(Errorf(CodeTimeout, "connection open longer than %s", cfg.MaxLifetime)), true
	case now.Sub(c.lastActive) >= cfg.IdleTimeout:
		return Fail(Errorf(CodeTimeout, "idle for %s, closing", cfg.IdleTimeout)), true
	}
	return c.headerEnding(now)
}

// nextDeadline is the earliest time at which something must happen on the
// connection if the client sends nothing more. With quiet, that includes
// the end of the quiet period after an unfinished line.
func (c *conn) nextDeadline(quiet bool) time.Time {
	d := c.idleDeadline(c.lastActive)
	if quiet && c.framer.Partial() {
		d = earliest(d, c.lastActive.Add(c.srv.cfg.QuietPeriod))
	}
	if h, waiting := c.headerDeadline(); waiting {
		d = earliest(d, h)
	}
	return d
}

// idleDeadline is when the connection ends if nothing happens after from:
// the idle timeout later, and never past its lifetime.
func (c *conn) idleDeadline(from time.Time) time.Time {
	return earliest(from.Add(c.srv.cfg.IdleTimeout), c.openedAt.Add(c.srv.cfg.MaxLifetime))
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// rearm points the connection's timer at its next deadline.
func (c *conn) rearm(now time.Time) {
	if c.action != evio.None {
		c.timer.Stop()
		return
	}
	c.timer.Reset(c.nextDeadline(false).Sub(now))
}

// fire runs on the timer's goroutine and wakes the loop for this conn.
func (c *conn) fire() {
	if c.gone.Load() {
		return
	}
	c.wakePending.Store(true)
	c.srv.wake(c.ec)
	c.rewake(maxRewakes)
}

// rewake sends a wake again while the loop has not answered the last one,
// at most tries more times: by then evio's own epoll timeout has passed.
func (c *conn) rewake(tries int) {
	if tries > 0 {
		time.AfterFunc(rewakeAfter, func() {
			if c.wakePending.Load() && !c.gone.Load() {
				c.srv.wake(c.ec)
				c.rewake(tries - 1)
			}
		})
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
	c.fire()
}

// closeSession closes a detached connection's socket, which ends its
// session at its next read or write. Connections in the loop are left to
// evio, which closes them when it stops.
func (c *conn) closeSession() {
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
}

func (s *Server) closed(ec evio.Conn, err error) evio.Action {
	c, _ := ec.Context().(*conn)
	if c == nil {
		return evio.None
	}
	c.leftLoop()
	s.release(c)
	return evio.None
}

// leftLoop stops everything that would wake the loop for this connection.
func (c *conn) leftLoop() {
	c.gone.Store(true)
	c.wakePending.Store(false)
	if c.timer != nil {
		c.timer.Stop()
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
