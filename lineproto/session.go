// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// Detached implements evloop.Session: the connection has left the loop
// for a goroutine that finishes it with Go's blocking I/O and deadlines.
// This is how blocking requests that cannot stay in flight are answered:
// the loop closes a connection as soon as it reads EOF, which would drop the
// reply to a command a half-closing client (busybox nc, nc -N) already
// sent; a detached connection is never read by the loop again.
func (c *conn) Detached(nc net.Conn, err error) {
	c.stopTimer()
	c.srv.detaches.Add(1)
	if err != nil {
		c.srv.log.Error().Str("code", logcode.DetachFailed).Time("event_time", time.Now()).Err(err).Msg("cannot take over detached connection")
		c.uncount()
		return
	}
	c.mu.Lock()
	c.nc = nc
	c.mu.Unlock()
	go c.serveDetached(nc)
}

// Closed implements evloop.Session: the loop closed the connection.
func (c *conn) Closed() {
	c.stopTimer()
	c.srv.release(c)
}

// stopTimer stops the connection's timer, if it has one: the loop has
// let the connection go, and must not be woken for it any more.
func (c *conn) stopTimer() {
	if c.timer != nil {
		c.timer.Stop()
	}
}

// serveDetached answers what the loop handed over, then serves the rest of
// the connection: every request in order, one write per reply.
func (c *conn) serveDetached(nc net.Conn) {
	defer func() {
		closeGracefully(nc)
		c.uncount()
	}()
	if len(c.handoffOut) > 0 && !c.write(nc, c.handoffOut) || c.handoffClose {
		return
	}
	if req := c.handoff; req != nil {
		c.handoff = nil
		if !c.answerOne(nc, *req, nil) {
			return
		}
	}
	c.serveLoop(nc)
}

// serveLoop reads and answers until the client leaves, a deadline passes,
// a reply closes the connection, or the server shuts down.
func (c *conn) serveLoop(nc net.Conn) {
	buf := make([]byte, 4096)
	flush := false
	for {
		for {
			req, r, ok := c.next(flush)
			if !ok {
				break
			}
			if !c.answerOne(nc, req, r) {
				return
			}
		}
		flush = false
		// Quiet and idle periods count from when the session starts waiting,
		// not from the last read: answering may have taken longer than the
		// quiet period while the rest of a line waited in the socket.
		if now := time.Now(); now.After(c.lastActive) {
			c.lastActive = now
		}
		nc.SetReadDeadline(c.nextDeadline(true))
		// Checked after setting the deadline, which would overwrite the
		// one a concurrent Shutdown sets to wake this read.
		if r, over := c.mustEnd(time.Now()); over {
			c.write(nc, r.Bytes())
			return
		}
		n, err := nc.Read(buf)
		now := time.Now()
		switch {
		case n > 0:
			c.lastActive = now
			c.framer.Write(buf[:n])
		case errors.Is(err, os.ErrDeadlineExceeded):
			if c.framer.Partial() && now.Sub(c.lastActive) >= c.srv.cfg.QuietPeriod {
				flush = true // silence ends the line
				continue
			}
			if r, over := c.mustEnd(now); over {
				c.write(nc, r.Bytes())
				return
			}
			// Woken early by a shutdown while a line is arriving: wait on.
		case err == io.EOF && c.framer.Partial():
			// The client half-closed: what it sent last is a whole line.
			req, r, ok := c.next(true)
			if ok {
				c.answerOne(nc, req, r)
			}
			return
		default:
			return
		}
	}
}

// answerOne runs req (or sends r, the reply to a malformed line) and writes
// the reply. It reports whether the connection stays open.
func (c *conn) answerOne(nc net.Conn, req Request, r *Reply) bool {
	reply := c.serve(&req, r)
	return c.write(nc, reply.Bytes()) && !reply.close
}

// write sends out in one write, giving a client that does not read as long
// as an idle one, and never past the connection's lifetime. It reports
// whether the write succeeded.
func (c *conn) write(nc net.Conn, out []byte) bool {
	nc.SetWriteDeadline(c.idleDeadline(time.Now()))
	_, err := nc.Write(out)
	return err == nil
}

// A reply that ends a connection (413, 408, 503, bye) must reach a client
// that is still sending: the rest of an over-long line, a command sent as
// the idle timeout fired. Closing a socket with unread input makes the
// kernel send a reset, which can destroy the reply before the client reads
// it. So the server shuts down its sending side (the client reads the
// reply, then a clean end of stream) and reads and discards what still
// comes, up to lingerTime and lingerBytes, before it closes.
const (
	lingerTime  = time.Second
	lingerBytes = 256 << 10
)

// drainBuffers hold what closeGracefully reads and throws away: large, so
// that a client still flooding costs few reads.
var drainBuffers = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// closeGracefully closes nc after the client has closed too, or the
// linger limits are reached.
func closeGracefully(nc net.Conn) {
	defer nc.Close()
	tc, ok := nc.(*net.TCPConn)
	if !ok || tc.CloseWrite() != nil {
		return
	}
	tc.SetReadDeadline(time.Now().Add(lingerTime))
	buf := drainBuffers.Get().(*[64 << 10]byte)
	defer drainBuffers.Put(buf)
	for left := lingerBytes; left > 0; {
		n, err := tc.Read(buf[:min(left, len(buf))])
		if err != nil {
			return
		}
		left -= n
	}
}

// uncount removes a connection whose session is over from the connection
// limits and, if it was refused, from the lingering refusals.
func (c *conn) uncount() {
	c.srv.release(c)
	if c.lingers {
		c.srv.lingering.Add(-1)
	}
}
