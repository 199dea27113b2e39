// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/tidwall/evio"
)

// rewakeAfter is how long a wake may go unanswered before it is sent again.
// evio can lose a wake that lands while its loop drains the wake queue
// (evio defect 1); the loop would then only see it at its 100 ms epoll
// timeout.
const (
	rewakeAfter = 2 * time.Millisecond
	maxRewakes  = 50
)

// conn is the loop's state of one connection, kept as evio's context.
// Only the loop goroutine touches it, except the atomics.
type conn struct {
	loop    *Loop
	ec      evio.Conn
	session Session

	// evio overwrites its pending output and action on every wake (evio
	// defect 2), so both are kept here: once Close or Detach is decided
	// it is returned again on every later callback.
	action    Action
	outQueued bool // output returned to evio that it may not have written yet
	lost      bool // out of evio's epoll set for good (see paused.Settle)

	wakePending atomic.Bool // a wake was sent and Data(nil) has not run since
	gone        atomic.Bool // the loop no longer has the connection: no more wakes
}

func (l *Loop) opened(ec evio.Conn) ([]byte, evio.Options, evio.Action) {
	c := &conn{loop: l, ec: ec}
	ec.SetContext(c)
	s, out, action := l.h.Open(c, ec.RemoteAddr())
	c.session = s
	c.returned(out, action)
	return out, evio.Options{ReuseInputBuffer: true}, toEvio(action)
}

// data is evio's Data callback: in holds bytes read from the client, or is
// nil when the connection was woken.
func (l *Loop) data(ec evio.Conn, in []byte) ([]byte, evio.Action) {
	c := ec.Context().(*conn)
	if c.action != None || c.lost {
		return nil, toEvio(c.action)
	}
	if in == nil {
		c.wakePending.Store(false)
	} else {
		c.outQueued = false // evio reads only once it has written all output
	}
	out, action := c.session.Data(in)
	c.returned(out, action)
	return out, toEvio(action)
}

// returned records what the session returned to evio.
func (c *conn) returned(out []byte, action Action) {
	c.action = action
	if len(out) > 0 {
		c.outQueued = true
	}
}

func (l *Loop) closed(ec evio.Conn, err error) evio.Action {
	c, _ := ec.Context().(*conn)
	if c == nil {
		return evio.None
	}
	c.stopWakes()
	c.session.Closed()
	return evio.None
}

// detached is evio's Detached callback: the connection leaves the loop,
// as a net.Conn with deadlines (netConnFromDetached).
func (l *Loop) detached(ec evio.Conn, rwc io.ReadWriteCloser) evio.Action {
	c := ec.Context().(*conn)
	c.stopWakes()
	nc, err := netConnFromDetached(rwc)
	c.session.Detached(nc, err)
	return evio.None
}

// stopWakes makes every later Wake do nothing: the loop no longer has the
// connection.
func (c *conn) stopWakes() {
	c.gone.Store(true)
	c.wakePending.Store(false)
}

// OutputQueued implements Conn.
func (c *conn) OutputQueued() bool { return c.outQueued }

// Wake implements Conn: it asks evio for Data(nil), and again while the
// loop has not answered (evio defect 1).
func (c *conn) Wake() {
	if c.gone.Load() {
		return
	}
	c.wakePending.Store(true)
	c.loop.wake(c.ec)
	c.rewake(maxRewakes)
}

// rewake sends a wake again while the loop has not answered the last one,
// at most tries more times: by then evio's own epoll timeout has passed.
func (c *conn) rewake(tries int) {
	if tries > 0 {
		time.AfterFunc(rewakeAfter, func() {
			if c.wakePending.Load() && !c.gone.Load() {
				c.loop.wake(c.ec)
				c.rewake(tries - 1)
			}
		})
	}
}

// wake asks the loop to call Data(c, nil) soon, unless the loops are gone
// (evio defect 5: a late Wake writes into a closed eventfd).
func (l *Loop) wake(ec evio.Conn) {
	l.gateMu.RLock()
	if !l.loopsOff {
		ec.Wake()
	}
	l.gateMu.RUnlock()
}
