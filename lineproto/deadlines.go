// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"time"

	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// mustEnd reports whether the connection must end now, and the reply that
// ends it: the server is shutting down (and no line is half received), or
// the lifetime, idle or PROXY header deadline passed.
func (c *conn) mustEnd(now time.Time) (Reply, bool) {
	cfg := c.srv.cfg
	switch {
	case c.srv.draining.Load() && !c.framer.Partial():
		return Fail(Errorf(CodeUnavailable, "server shutting down, retry shortly")), true
	case now.Sub(c.openedAt) >= cfg.MaxLifetime:
		return Fail(Errorf(CodeTimeout, "connection open longer than %s", cfg.MaxLifetime)), true
	case now.Sub(c.lastActive) >= cfg.IdleTimeout:
		return Fail(Errorf(CodeTimeout, "idle for %s, closing", cfg.IdleTimeout)), true
	}
	return c.headerMustEnd(now)
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
	if c.action != evloop.None {
		c.timer.Stop()
		return
	}
	c.timer.Reset(c.nextDeadline(false).Sub(now))
}
