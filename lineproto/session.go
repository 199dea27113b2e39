package lineproto

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/tidwall/evio"
)

// detached is evio's Detached callback. The connection leaves the loop for
// a goroutine that finishes it with Go's blocking I/O and deadlines. This is
// how blocking requests are answered: evio closes a connection as soon as
// it reads EOF, which would drop the reply to a command a half-closing
// client (busybox nc, nc -N) already sent; a detached connection is never
// read by evio again.
func (s *Server) detached(ec evio.Conn, rwc io.ReadWriteCloser) evio.Action {
	c := ec.Context().(*conn)
	c.wakePending.Store(false)
	c.timer.Stop()
	nc, err := netConnFromDetached(rwc)
	if err != nil {
		s.log.Error().Str("code", "ERR0501").Err(err).Msg("cannot take over detached connection")
		s.release(c)
		return evio.None
	}
	c.mu.Lock()
	c.nc = nc
	c.mu.Unlock()
	go c.serveDetached(nc)
	return evio.None
}

// serveDetached answers what the loop handed over, then serves the rest of
// the connection: every request in order, one write per reply.
func (c *conn) serveDetached(nc net.Conn) {
	defer func() {
		nc.Close()
		c.srv.release(c)
	}()
	if len(c.handoffOut) > 0 && (!c.write(nc, c.handoffOut) || c.handoffClose) {
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
		if c.srv.draining.Load() {
			c.write(nc, Fail(Errorf(CodeUnavailable, "server shutting down, retry shortly")).Bytes())
			return
		}
		nc.SetReadDeadline(c.nextDeadline(true))
		n, err := nc.Read(buf)
		now := time.Now()
		flush = false
		switch {
		case n > 0:
			c.lastActive = now
			c.framer.Write(buf[:n])
		case errors.Is(err, os.ErrDeadlineExceeded):
			if r, over := c.deadlinePassed(now); over {
				c.write(nc, r.Bytes())
				return
			}
			flush = c.framer.Partial()
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
	return c.write(nc, reply.Bytes()) && !reply.Close
}

// write sends out in one write, giving a client that does not read as long
// as an idle one before giving up. It reports whether the write succeeded.
func (c *conn) write(nc net.Conn, out []byte) bool {
	nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
	_, err := nc.Write(out)
	return err == nil
}
