// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// A paused connection is out of evio's epoll set, so evio reads nothing
// from it while another goroutine (a worker, or the group-commit writer)
// writes a reply straight to the socket through a duplicate of its
// descriptor. That is what keeps the reply safe: evio closes a connection
// the moment it reads EOF (evio defect 3), and a client that half-closes
// right after its line (busybox nc, nc -N) would lose the reply and every
// line after it. It also keeps the loop from spinning: with evio's
// descriptor closed and the duplicate open, epoll would report the EOF
// again and again. Once the reply is written, the descriptor goes back
// (level-triggered, so input or an EOF that came meanwhile is reported at
// once) and the loop goes on as usual: the answerer puts it back itself
// (giveBack) and the loop needs no wake, unless the reply ends the
// connection, the session asked for a wake, the loop already looked for
// the reply (its timer or a shutdown woke it meanwhile), the epoll_ctl
// failed, or the loops are stopping; then the answerer wakes the loop,
// which puts the descriptor back itself (resume). Nothing may be returned
// to evio while the descriptor is out: evio would try to change its
// registration, and panics when that fails. Measured in docs/add-path.md.
type paused struct {
	c *conn
	// fd is a duplicate of the socket's descriptor, owned by the
	// answerer: evio closes its own when the server stops, and the
	// answerer's write must never land on a number reused meanwhile.
	fd int
	// sock and poll are evio's descriptor of the socket and its loop's
	// epoll descriptor, for putting the socket back (epollAdd).
	sock, poll   int
	wakeWhenDone bool

	mu        sync.Mutex
	done      bool // the reply is written
	closing   bool // and it ends the connection
	readable  bool // and the socket is back in the epoll set (giveBack)
	loopWaits bool // the loop asked before done, and waits for a wake
}

// Pause implements Conn. Nothing the loop returned may still wait in evio
// (the answerer's write would overtake it).
func (c *conn) Pause(wakeWhenDone bool, start func(Paused) bool) bool {
	if c.outQueued {
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
	p := &paused{c: c, fd: dup, sock: fd, poll: poll, wakeWhenDone: wakeWhenDone}
	if !start(p) {
		syscall.Close(dup)
		p.resume()
		return false
	}
	return true
}

// Reply implements Paused. It never waits on the client: what the socket
// cannot take at once is written by a goroutine of its own (writeReply).
func (p *paused) Reply(out []byte, closing bool, deadline time.Time) {
	writeReply(p.fd, out, deadline, func() {
		syscall.Close(p.fd)
		if !p.finish(closing) {
			p.c.Wake()
		}
	})
}

// finish marks the reply written. A reply that does not end the
// connection, not awaited by a wake, also puts the socket back in the
// epoll set here, before the loop can see done: the loop then takes the
// connection back (Settle) at its next event, and needs no wake. finish
// reports whether it did; if not, the caller wakes the loop.
func (p *paused) finish(closing bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.closing = true, closing
	if closing || p.loopWaits || p.wakeWhenDone {
		return false
	}
	p.readable = p.c.loop.giveBack(p)
	return p.readable
}

// Settle implements Paused. A connection whose socket cannot be put back
// is lost: Settle never reports done, the loop never calls its session
// again, and evio closes the descriptor when it stops.
func (p *paused) Settle() (done, closing bool) {
	done, closing, readable := p.doneOrWait()
	if !done {
		return false, false
	}
	if !readable && !p.resume() {
		p.c.lost = true
		return false, false
	}
	return true, closing
}

// doneOrWait reports whether the reply is written, whether it ends the
// connection, and whether the socket is back in the epoll set. If the
// reply is not written yet, it records that the loop now waits for a
// wake. Once it reports done, the answerer no longer touches p.
func (p *paused) doneOrWait() (done, closing, readable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loopWaits = p.loopWaits || !p.done
	return p.done, p.closing, p.readable
}

// giveBack puts the socket of p back in its loop's epoll set from the
// goroutine that answered, unless the loops are stopping (evio closes
// their descriptors then, and the numbers may be reused).
func (l *Loop) giveBack(p *paused) bool {
	l.gateMu.RLock()
	defer l.gateMu.RUnlock()
	return !l.loopsOff && p.epollAdd() == nil
}

// resume puts the socket of p back in evio's epoll set, on the loop.
func (p *paused) resume() bool {
	if err := p.epollAdd(); err != nil && err != syscall.EEXIST {
		p.c.loop.log.Error().Str("code", logcode.InflightLost).Time("event_time", time.Now()).
			Err(err).Msg("connection could not be watched again after its request")
		return false
	}
	return true
}

// epollAdd puts the socket of p back in evio's epoll set, for reading, as
// evio has it between replies.
func (p *paused) epollAdd() error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p.sock)}
	return syscall.EpollCtl(p.poll, syscall.EPOLL_CTL_ADD, p.sock, &ev)
}

// writeReply writes out to a non-blocking socket descriptor, then calls
// written. Within lineproto's output budget the send buffer always has
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
