package lineproto

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// A blocking request on a connection that has nothing else to say is
// answered without leaving the loop: the loop hands it to a worker (or,
// when the handler is a Starter that takes it, to the handler itself) and
// waits; whoever has the reply writes it straight to the socket through a
// duplicate of its descriptor, then puts the socket back in the loop's
// epoll set itself, and the loop goes on reading when the client's next
// bytes (or its EOF) arrive. Leaving the loop (a detach) costs a dozen
// system calls and a goroutine per connection; this costs a dup, a write,
// a close and two epoll_ctl. Only a reply that ends the connection, one
// with input buffered behind it, or one the loop already looked for (its
// idle timer or a shutdown fired meanwhile) wakes the loop, which then puts
// the socket back and acts; so does one whose epoll_ctl failed, or came
// while the loops are stopping.
//
// While the request runs, the descriptor is out of evio's epoll set, so
// evio reads nothing from it. That is what keeps the reply safe: evio
// closes a connection the moment it reads EOF (evio defect 3), and a
// client that half-closes right after its line (busybox nc, nc -N) would
// lose the reply and every line after it. It also keeps the loop from
// spinning: with evio's descriptor closed and the worker's duplicate
// open, epoll would report the EOF again and again. Once the worker is
// done, the descriptor goes back (level-triggered, so input or an EOF
// that came meanwhile is reported at once) and the loop goes on as usual.
// Nothing may be returned to evio while the descriptor is out: evio would
// try to change its registration, and panics when that fails.
type inflight struct {
	// fd is a duplicate of the socket's descriptor, owned by the worker:
	// evio closes its own when the server stops, and the worker's write
	// must never land on a number reused meanwhile.
	fd int
	// sock and poll are evio's descriptor of the socket and its loop's
	// epoll descriptor, for putting the socket back (epollAdd).
	sock, poll int

	mu      sync.Mutex
	done    bool // the reply is written
	close   bool // and it ends the connection
	watched bool // and the socket is back in the epoll set (answered)
	looked  bool // the loop asked before done, and waits for a wake

	// buffered: input after the request was already read, which the loop
	// must answer without waiting for an event (the client may send
	// nothing more, or only its EOF, on which evio closes at once).
	buffered bool
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
	fd, poll := fdField(c.ec), pollField(c.ec) // a made-up connection in a test has neither
	if fd < 0 || poll < 0 {
		return false
	}
	dup, err := syscall.Dup(fd)
	if err != nil {
		return false
	}
	if syscall.EpollCtl(poll, syscall.EPOLL_CTL_DEL, fd, &syscall.EpollEvent{}) != nil {
		syscall.Close(dup)
		return false
	}
	f := &inflight{fd: dup, sock: fd, poll: poll, buffered: c.framer.Buffered() > 0}
	if !c.srv.begin(req, func(r Reply) { c.finishInflight(f, req, r) }) {
		syscall.Close(dup)
		c.watchAgain(f)
		return false
	}
	c.inflight = f
	c.loopOut += MaxReplyBytes // the most the worker writes
	return true
}

// finishInflight runs on the worker, or wherever a Starter answers (the
// group-commit writer): it logs and writes the reply, and hands the
// connection back to the loop (answered). It never waits on the client:
// what the socket cannot take at once is written by a goroutine of its own
// (writeReply).
func (c *conn) finishInflight(f *inflight, req *Request, r Reply) {
	c.srv.logCommand(c.remote, req, r, req.Read)
	writeReply(f.fd, r.Bytes(), c.idleDeadline(time.Now()), func() {
		syscall.Close(f.fd)
		if !c.answered(f, r.close) {
			c.fire()
		}
	})
}

// answered marks f done. A reply that does not end the connection, with
// no input buffered behind it and not looked for by the loop yet, also
// puts the socket back in the epoll set here, before the loop can see
// done: the loop then takes the connection back (settleInflight) at its
// next event, and needs no wake.
// answered reports whether it did; if not, the caller wakes the loop,
// which puts the socket back itself.
func (c *conn) answered(f *inflight, closing bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done, f.close = true, closing
	if closing || f.looked || f.buffered {
		return false
	}
	f.watched = c.srv.watchFromOutside(f)
	return f.watched
}

// begin starts req off the loop: by the handler itself when it is a
// Starter that takes it, else on a worker. then hears the reply.
func (s *Server) begin(req *Request, then func(Reply)) bool {
	if st, ok := s.handler.(Starter); ok {
		ctx, cancel := context.WithDeadline(context.Background(), s.pool.deadline(req))
		if startSafely(ctx, st, req, func(r Reply) { cancel(); then(r) }, s.log) {
			return true
		}
		cancel()
	}
	return s.pool.start(req, then)
}

// over reports whether the worker has written the reply, whether that
// reply ends the connection, and whether the socket is back in the epoll
// set. Once it reports done, the worker no longer touches the connection;
// until then, the worker knows that the loop is waiting for a wake.
func (f *inflight) over() (done, close, watched bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.looked = f.looked || !f.done
	return f.done, f.close, f.watched
}

// watchFromOutside puts the socket of f back in its loop's epoll set from
// the goroutine that answered, unless the loops are stopping (evio closes
// their descriptors then, and the numbers may be reused).
func (s *Server) watchFromOutside(f *inflight) bool {
	s.wakeMu.RLock()
	defer s.wakeMu.RUnlock()
	return !s.loopsOff && epollAdd(f) == nil
}

// epollAdd puts the socket of f back in evio's epoll set, for reading, as
// evio has it between replies.
func epollAdd(f *inflight) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(f.sock)}
	return syscall.EpollCtl(f.poll, syscall.EPOLL_CTL_ADD, f.sock, &ev)
}

// watchAgain puts the socket of f back in evio's epoll set. Called on the
// loop.
func (c *conn) watchAgain(f *inflight) bool {
	if err := epollAdd(f); err != nil && err != syscall.EEXIST {
		c.srv.log.Error().Str("code", logcode.InflightLost).Time("event_time", time.Now()).
			Err(err).Msg("connection could not be watched again after its request")
		return false
	}
	return true
}

// writeReply writes out to a non-blocking socket descriptor, then calls
// written. Within the loop's output budget the send buffer always has
// room, and it all happens before writeReply returns. Should the buffer be
// full, the rest goes through Go's poller, with the deadline, on a
// goroutine of its own, so that the caller (maybe the writer of every
// group commit) never waits on one slow client.
func writeReply(fd int, out []byte, deadline time.Time, written func()) {
	n, err := syscall.Write(fd, out)
	if (err == nil && n == len(out)) || (err != nil && !errors.Is(err, syscall.EAGAIN)) {
		written() // all of it, or the client is gone (the loop or session sees it too)
		return
	}
	rest := out[max(n, 0):]
	go func() {
		defer written()
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
		nc.Write(rest)
	}()
}
