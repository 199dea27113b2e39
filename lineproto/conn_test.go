// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// fakeLoop stands in for the event loop (evloop.Conn), so that these
// tests drive the connection's state machine without evloop. It keeps the
// loop's side of the contract: it calls Data no more once Close or Detach
// was returned, says output is queued from when Data returns some until
// the next read, and pauses a connection (when canPause) for a reply
// written from outside, which it keeps. Its wakes go to a channel and
// never reach a loop.
type fakeLoop struct {
	wakes    chan struct{}
	queued   bool
	action   evloop.Action
	canPause bool
	paused   *fakePaused
}

func (f *fakeLoop) Wake()              { f.wakes <- struct{}{} }
func (f *fakeLoop) OutputQueued() bool { return f.queued }
func (f *fakeLoop) Pause(wakeWhenDone bool, start func(evloop.Paused) bool) bool {
	if !f.canPause || f.queued {
		return false
	}
	p := &fakePaused{loop: f, wakeWhenDone: wakeWhenDone, replied: make(chan struct{})}
	if !start(p) {
		return false
	}
	f.paused = p
	return true
}

// data is the loop calling c.Data: with bytes read, or nil for a wake.
func (f *fakeLoop) data(c *conn, in []byte) ([]byte, evloop.Action) {
	if f.action != evloop.None {
		return nil, f.action
	}
	if in != nil {
		f.queued = false
	}
	out, action := c.Data(in)
	f.action = action
	if len(out) > 0 {
		f.queued = true
	}
	return out, action
}

// fakePaused keeps the reply written from outside the loop.
type fakePaused struct {
	loop         *fakeLoop
	wakeWhenDone bool
	replied      chan struct{}

	mu      sync.Mutex
	out     []byte
	closing bool
	done    bool
}

func (p *fakePaused) Reply(out []byte, closing bool, _ time.Time) {
	p.mu.Lock()
	p.out, p.closing, p.done = out, closing, true
	p.mu.Unlock()
	close(p.replied)
	if closing || p.wakeWhenDone {
		p.loop.Wake()
	}
}

func (p *fakePaused) Settle() (bool, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done, p.closing
}

func newFakeWith(t *testing.T, cfg Config, h Handler) (*Server, *fakeLoop, *conn) {
	t.Helper()
	s := NewServer(cfg, h, zerolog.Nop())
	t.Cleanup(s.pool.close)
	f := &fakeLoop{wakes: make(chan struct{}, 1000)}
	sess, _, _ := loopSide{s}.Open(f, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000})
	c := sess.(*conn)
	t.Cleanup(func() {
		if c.nc == nil {
			c.Closed()
		}
	})
	return s, f, c
}

func newFake(t *testing.T) (*Server, *fakeLoop, *conn) {
	t.Helper()
	return newFakeWith(t, testConfig(), &testHandler{})
}

// A blocking request that cannot stay in flight (here: the loop cannot
// pause) makes the loop detach, and the request waits for the session.
func TestBlockingRequestHandedOff(t *testing.T) {
	_, f, c := newFake(t)
	if _, action := f.data(c, []byte("command store v 1\n")); action != evloop.Detach {
		t.Fatalf("action %v, want Detach", action)
	}
	if c.handoff == nil || c.handoff.Verb != "store" {
		t.Fatalf("handoff %+v", c.handoff)
	}
}

// evio defect 2: a wake overwrites evio's pending output. Output made on a
// wake while earlier output may still be unwritten goes to a session.
func TestWakeOutputWhileOutputPendingIsHandedOff(t *testing.T) {
	_, f, c := newFake(t)
	out, action := f.data(c, []byte("command ping\n"))
	if string(out) != "status ok 200 pong\n" || action != evloop.None {
		t.Fatalf("got %q %v", out, action)
	}
	c.lastActive = time.Now().Add(-time.Hour)
	out, action = f.data(c, nil)
	if out != nil || action != evloop.Detach {
		t.Fatalf("got %q %v, want no output and Detach", out, action)
	}
	if !strings.HasPrefix(string(c.handoffOut), "status error 408") || !c.handoffClose {
		t.Fatalf("handoff %q close=%v", c.handoffOut, c.handoffClose)
	}
}

// A reply that ends the connection goes to a session, which closes
// gracefully: evio would close at once, and a reset could destroy the reply
// (defect 5 of issue 12).
func TestClosingReplyIsHandedOff(t *testing.T) {
	_, f, c := newFake(t)
	c.lastActive = time.Now().Add(-time.Hour)
	out, action := f.data(c, nil)
	if out != nil || action != evloop.Detach || !strings.HasPrefix(string(c.handoffOut), "status error 408") || !c.handoffClose {
		t.Fatalf("got %q %v, handoff %q close=%v", out, action, c.handoffOut, c.handoffClose)
	}
}

// The loop writes little on one connection, so its writes never stall:
// it answers until its budget is spent and leaves the rest to a session.
func TestOutputBudgetDetaches(t *testing.T) {
	_, f, c := newFake(t)
	pong := len("status ok 200 pong\n")
	out, action := f.data(c, []byte(strings.Repeat("command ping\n", 400)))
	answered := len(c.handoffOut) / pong
	if out != nil || action != evloop.Detach || answered != loopOutputBudget/pong+1 {
		t.Fatalf("got %d bytes, %v, handoff %d bytes", len(out), action, len(c.handoffOut))
	}
	if rest := c.framer.Buffered(); rest != (400-answered)*len("command ping\n") {
		t.Fatalf("%d bytes left for the session, want the %d lines not answered", rest, 400-answered)
	}
}

// Defect 3 of issue 12: 65,000 bytes of pipelined "command help" made the
// loop render every reply at once (over 1 MB) for a client that may never
// read. Output held for one connection stays within the loop's budget and
// one reply; the lines not answered wait, unread, for the session.
func TestPipelinedOutputIsBounded(t *testing.T) {
	_, f, c := newFake(t)
	in := []byte(strings.Repeat("command help\n", 65000/len("command help\n")))
	out, action := f.data(c, in)
	held := len(out) + len(c.handoffOut)
	if action != evloop.Detach || held > loopOutputBudget+MaxReplyBytes {
		t.Fatalf("%v with %d bytes of output held, want Detach and at most %d", action, held, loopOutputBudget+MaxReplyBytes)
	}
	if c.framer.Buffered() == 0 {
		t.Fatal("every line answered at once")
	}
}

// A half-received line makes the loop detach: evio would close on EOF.
func TestPartialLineDetaches(t *testing.T) {
	_, f, c := newFake(t)
	out, action := f.data(c, []byte("command ping\ncommand pi"))
	if string(out) != "status ok 200 pong\n" || action != evloop.Detach {
		t.Fatalf("got %q %v", out, action)
	}
}
