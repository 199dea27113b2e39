// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tidwall/evio"
)

// Action is what the loop does with a connection after a callback.
type Action int

const (
	// None keeps the connection in the loop, reading.
	None Action = iota
	// Close writes the output returned with it, then closes at once.
	Close
	// Detach writes the output returned with it, then hands the
	// connection to Session.Detached; the loop never reads it again.
	Detach
)

// Handler is what the loop serves: it opens a Session per connection.
type Handler interface {
	// Serving is called once, when every listener listens, with their
	// addresses in the order given to Serve.
	Serving(addrs []net.Addr)
	// Open is called on the loop for each accepted connection. The
	// Session it returns hears about the connection from then on; out and
	// action are as for Session.Data.
	Open(c Conn, remote net.Addr) (s Session, out []byte, action Action)
}

// Session is one connection as its protocol sees it. Data runs on the
// loop; once it returns Close or Detach it is not called again (the loop
// keeps returning that action to evio). The loop closes a connection at
// once when it reads its EOF (evio defect 3), and reads again as soon as
// Data returns None with nothing paused: a session that still owes the
// client a reply, or holds part of a line, must pause or detach first.
type Session interface {
	// Data is called with the bytes read from the client, or with nil
	// when the connection was woken (Conn.Wake). It returns output to
	// write and what to do next. While a Paused reply is not settled it
	// must return no output and None, or Detach.
	Data(in []byte) (out []byte, action Action)
	// Detached is called on the loop once the connection has left it,
	// with the socket as a net.Conn on Go's poller (deadlines work), or
	// with the error that kept it from being taken over (the socket is
	// closed then). The session owns nc from now on.
	Detached(nc net.Conn, err error)
	// Closed is called on the loop once the loop has closed the
	// connection.
	Closed()
}

// Conn is the loop's side of one connection, for its Session.
type Conn interface {
	// Wake makes the loop call Session.Data(nil) soon. Any goroutine may
	// call it; after Closed or Detached it does nothing.
	Wake()
	// OutputQueued reports whether output returned earlier may not be
	// written yet. Output returned on a wake would then replace it (evio
	// defect 2): the session must hand it elsewhere. Called on the loop.
	OutputQueued() bool
	// Pause stops reading the connection so that another goroutine can
	// write a reply straight to the socket, and calls start with the
	// handle for that (on the loop, before Pause returns). If the
	// connection cannot pause (output still queued, or no socket), or
	// start reports false, the connection goes on reading and Pause
	// reports false. With wakeWhenDone, the loop is woken once the reply
	// is written (input is buffered behind the request: the client may
	// send nothing more).
	Pause(wakeWhenDone bool, start func(Paused) bool) bool
}

// Paused is a connection whose reading is paused for one reply written
// from outside the loop.
type Paused interface {
	// Reply writes out to the socket, from any goroutine, once, without
	// waiting on the client past deadline; then reading resumes. The
	// loop is woken when closing, when the session asked for a wake, or
	// when Settle already reported the reply not done.
	Reply(out []byte, closing bool, deadline time.Time)
	// Settle reports, on the loop, whether the reply is written and the
	// connection reading again, and whether the reply ends the
	// connection. Until then the session returns no output.
	Settle() (done, closing bool)
}

// Loop is the event loop: evio, its callbacks, and the gate that keeps
// other goroutines off its pollers once they are gone.
type Loop struct {
	h   Handler
	log zerolog.Logger

	stopping atomic.Bool  // Stop was called: Tick returns Shutdown
	gateMu   sync.RWMutex // held for reading around every Wake and giveBack
	loopsOff bool         // under gateMu: evio's pollers are gone or going
}

// New returns a loop that opens connections with h and logs its failures
// to log. Call Serve to run it.
func New(h Handler, log zerolog.Logger) *Loop { return &Loop{h: h, log: log} }

// Serve listens on the comma-separated addresses (see listenURLs) with
// the given number of loops (0: one per CPU) until Stop. It returns an
// error if the loop stops for any other reason (evio stops on accept
// errors other than EAGAIN), which the caller must treat as fatal.
func (l *Loop) Serve(addrs string, loops int) error {
	if loops == 0 {
		loops = -1 // evio: one per CPU
	}
	ev := evio.Events{
		NumLoops: loops,
		Serving: func(srv evio.Server) evio.Action {
			l.h.Serving(srv.Addrs)
			return evio.None
		},
		Opened:   l.opened,
		Data:     l.data,
		Closed:   l.closed,
		Detached: l.detached,
		Tick:     l.tick,
	}
	err := evio.Serve(ev, listenURLs(addrs)...)
	l.closeGate() // also when the loop stopped by itself
	if err == nil && !l.stopping.Load() {
		err = errors.New("event loop stopped without a shutdown request")
	}
	return err
}

// Stop lets the loops stop (at their next tick), and from now on keeps
// every other goroutine off them: evio closes its pollers as it stops.
// Call it once no connection needs the loop any more.
func (l *Loop) Stop() {
	l.closeGate()
	l.stopping.Store(true)
}

func (l *Loop) closeGate() {
	l.gateMu.Lock()
	l.loopsOff = true
	l.gateMu.Unlock()
}

func (l *Loop) tick() (time.Duration, evio.Action) {
	if l.stopping.Load() {
		// evio's ticker sleeps this long before its next wake; by then the
		// process is gone, so it never writes to the closed poller.
		return time.Hour, evio.Shutdown
	}
	return 20 * time.Millisecond, evio.None
}

// listenURLs turns the comma-separated listen list into evio's addresses.
// An IPv4 address listens on IPv4 only ("tcp4"), an IPv6 address on IPv6
// only ("tcp6"), so "0.0.0.0:10023,[::]:10023" opens two sockets; an empty
// host (":10023") or a name is left to Go ("tcp"), which opens one socket
// for IPv4 and IPv6, or IPv4 only when the kernel has no IPv6.
func listenURLs(list string) []string {
	var urls []string
	for _, addr := range strings.Split(list, ",") {
		addr = strings.TrimSpace(addr)
		network := "tcp"
		if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Is4() {
			network = "tcp4"
		} else if err == nil {
			network = "tcp6"
		}
		urls = append(urls, network+"://"+addr)
	}
	return urls
}

// toEvio is evio's action for a.
func toEvio(a Action) evio.Action {
	switch a {
	case Close:
		return evio.Close
	case Detach:
		return evio.Detach
	}
	return evio.None
}
