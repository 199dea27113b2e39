// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"context"
	"time"

	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// A blocking request on a connection that has nothing else to say is
// answered without leaving the loop: the loop pauses the connection
// (evloop.Conn.Pause: nothing is read from it meanwhile) and hands the
// request to a worker (or, when the handler is a Starter that takes it, to
// the handler itself); whoever has the reply writes it straight to the
// socket (evloop.Paused.Reply), and the loop goes on reading when the
// client's next bytes (or its EOF) arrive. Leaving the loop (a detach)
// costs more than this (docs/performance.md, docs/add-path.md). Only a
// reply that ends the connection, one with input buffered behind it, or
// one the loop already looked for (its idle timer or a shutdown woke it
// meanwhile) wakes the loop, which then acts (settleInflight).

// startInflight runs req on a worker while the connection stays in the
// loop, if it can: the reply must fit in the loop's output budget, the
// loop must be able to pause the connection, and the pool must take the
// job. It reports whether the request was started; if not, the caller
// detaches as before.
func (c *conn) startInflight(req *Request) bool {
	if c.loopOut+MaxReplyBytes > loopOutputBudget {
		return false
	}
	started := c.loop.Pause(c.framer.Buffered() > 0, func(p evloop.Paused) bool {
		c.inflight = p // on the loop, before the reply can come
		return c.srv.begin(req, func(r Reply) { c.finishInflight(p, req, r) })
	})
	if !started {
		c.inflight = nil
		return false
	}
	c.loopOut += MaxReplyBytes // the most the worker writes
	return true
}

// finishInflight runs on the worker, or wherever a Starter answers (the
// group-commit writer): it logs the reply and has it written straight to
// the socket, which hands the connection back to the loop. It never waits
// on the client.
func (c *conn) finishInflight(p evloop.Paused, req *Request, r Reply) {
	c.srv.logCommand(c.remote, req, r, req.Read)
	p.Reply(r.Bytes(), r.close, c.idleDeadline(time.Now()))
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
