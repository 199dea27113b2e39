package lineproto

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// A blocking request on a connection that has nothing else to say is
// answered without leaving the loop: the loop hands it to a worker and
// waits; the worker writes the reply straight to the socket through a
// duplicate of its descriptor, then wakes the loop, which goes on reading.
// Leaving the loop (a detach) costs a dozen system calls and a goroutine
// per connection; this costs a dup, a write, a close and a wake.
//
// The duplicate is also what keeps the reply safe from evio: evio closes a
// connection the moment it reads EOF, and a client that half-closes right
// after its line (busybox nc, nc -N) would lose the reply. When evio closes
// or detaches the connection while its request runs, the worker still
// writes the reply, then finishes the connection as a session
// (serveDetached), so every line the client sent is answered.
// maxBufferedInflight bounds what a client may send while its request is
// in flight before the connection leaves the loop (see settleInflight).
const maxBufferedInflight = 64 << 10

type inflight struct {
	fd int // a duplicate of the socket's descriptor, owned by the worker

	mu    sync.Mutex
	done  bool     // the reply is written
	close bool     // and it ends the connection
	wake  bool     // the loop has something to do once it is written
	gone  bool     // the loop let go of the connection (closed or detached)
	nc    net.Conn // when detached: the connection for the session
}

// startInflight runs req on a worker while the connection stays in the
// loop, if it can: nothing written by the loop may still be waiting in
// evio (the worker's write would overtake it), the reply must fit in the
// loop's output budget, and the pool must take the job. It reports whether
// the request was started; if not, the caller detaches as before.
func (c *conn) startInflight(req *Request) bool {
	if c.outPending || c.loopOut+MaxReplyBytes > loopOutputBudget {
		return false
	}
	fd := fdField(c.ec) // a made-up connection in a test has none
	if fd < 0 {
		return false
	}
	dup, err := syscall.Dup(fd)
	if err != nil {
		return false
	}
	// Bytes after the line are answered once the reply is written; if
	// none came, the loop needs no wake: the client's next bytes or its
	// close bring it back.
	f := &inflight{fd: dup, wake: c.framer.Buffered() > 0}
	if !c.srv.pool.start(req, func(r Reply) { c.finishInflight(f, req, r) }) {
		syscall.Close(dup)
		return false
	}
	c.inflight = f
	c.loopOut += MaxReplyBytes // the most the worker writes
	return true
}

// finishInflight runs on the worker: it logs and writes the reply, then
// gives the connection back to the loop, or, if the loop let go of it
// meanwhile, serves the rest of it as a session.
func (c *conn) finishInflight(f *inflight, req *Request, r Reply) {
	c.srv.logCommand(c.remote, req, r, req.Read)
	writeFD(f.fd, r.Bytes(), c.idleDeadline(time.Now()))
	f.mu.Lock()
	f.done, f.close = true, r.close
	gone, nc, wake := f.gone, f.nc, f.wake || r.close
	f.mu.Unlock()
	if !gone {
		syscall.Close(f.fd)
		if wake {
			c.fire() // the loop goes on with what happened meanwhile
		}
		return
	}
	if nc != nil {
		syscall.Close(f.fd)
	} else if nc, _ = fileConn(f.fd); nc == nil {
		c.ended()
		return
	}
	c.handoffClose = r.close
	c.mu.Lock()
	c.nc = nc // for Shutdown
	c.mu.Unlock()
	go c.serveDetached(nc)
}

// over reports whether the worker has written the reply, and whether that
// reply ends the connection. Called by the loop whenever something happens
// on the connection (input, its timer, a shutdown); while the request
// runs, that asks the worker to wake the loop once it is done. Once it
// reports done, the worker no longer touches the connection.
func (f *inflight) over() (done, close bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wake = f.wake || !f.done
	return f.done, f.close
}

// letGo records that the loop gave the connection up (nc is set when it
// was detached), and reports whether the worker will finish it; if not,
// the caller does.
func (f *inflight) letGo(nc net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return false
	}
	f.gone, f.nc = true, nc
	return true
}

// writeFD writes out to a non-blocking socket descriptor. Within the
// loop's output budget the send buffer always has room; should it not,
// the rest goes through Go's poller with a deadline.
func writeFD(fd int, out []byte, deadline time.Time) {
	n, err := syscall.Write(fd, out)
	if err == nil && n == len(out) {
		return
	}
	if err != nil && !errors.Is(err, syscall.EAGAIN) {
		return // the client is gone; the loop or session sees it too
	}
	nfd, err := syscall.Dup(fd)
	if err != nil {
		return
	}
	nc, err := fileConn(nfd)
	if err != nil {
		return
	}
	defer nc.Close()
	nc.SetWriteDeadline(deadline)
	nc.Write(out[max(n, 0):])
}
