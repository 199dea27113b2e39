package lineproto

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tidwall/evio"
)

// fakeConn stands in for evio's connection; its wakes go to a channel and
// never reach a loop, as when evio loses them.
type fakeConn struct {
	ctx   any
	wakes chan struct{}
}

func (f *fakeConn) Context() any        { return f.ctx }
func (f *fakeConn) SetContext(v any)    { f.ctx = v }
func (f *fakeConn) AddrIndex() int      { return 0 }
func (f *fakeConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10023} }
func (f *fakeConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (f *fakeConn) Wake()                  { f.wakes <- struct{}{} }
func (f *fakeConn) opened(s *Server) *conn { s.opened(f); return f.ctx.(*conn) }

func newFake(t *testing.T) (*Server, *fakeConn, *conn) {
	t.Helper()
	s := NewServer(testConfig(), &testHandler{}, zerolog.Nop())
	t.Cleanup(s.pool.close)
	f := &fakeConn{wakes: make(chan struct{}, 1000)}
	c := f.opened(s)
	t.Cleanup(func() { s.closed(f, nil) })
	return s, f, c
}

// evio defect 1: a wake can be lost. The connection wakes again until the
// loop has run Data for it.
func TestLostWakeIsRepeated(t *testing.T) {
	s, f, c := newFake(t)
	c.fire()
	for i := 0; i < 3; i++ { // the first wake and two repeats, none seen by a loop
		<-f.wakes
	}
	s.data(f, nil) // the loop finally sees one
	if c.wakePending.Load() {
		t.Fatal("wake still pending after Data ran")
	}
}

// evio defect 2: a wake overwrites evio's pending action. Once Close or
// Detach is decided, every later callback returns it again.
func TestActionIsSticky(t *testing.T) {
	s, f, c := newFake(t)
	if _, action := s.data(f, []byte("command store v 1\n")); action != evio.Detach {
		t.Fatalf("action %v, want Detach", action)
	}
	c.lastActive = time.Now().Add(-time.Hour) // idle deadline long past
	for i := 0; i < 3; i++ {
		if out, action := s.data(f, nil); action != evio.Detach || out != nil {
			t.Fatalf("wake %d: %q %v, want Detach and no output", i, out, action)
		}
	}
	if c.handoff == nil || c.handoff.Verb != "store" {
		t.Fatalf("handoff %+v", c.handoff)
	}
}

// evio defect 2: a wake overwrites evio's pending output. Output made on a
// wake while earlier output may still be unwritten goes to a session.
func TestWakeOutputWhileOutputPendingIsHandedOff(t *testing.T) {
	s, f, c := newFake(t)
	out, action := s.data(f, []byte("command ping\n"))
	if string(out) != "status ok 200 pong\n" || action != evio.None {
		t.Fatalf("got %q %v", out, action)
	}
	c.lastActive = time.Now().Add(-time.Hour)
	out, action = s.data(f, nil)
	if out != nil || action != evio.Detach {
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
	s, f, c := newFake(t)
	c.lastActive = time.Now().Add(-time.Hour)
	out, action := s.data(f, nil)
	if out != nil || action != evio.Detach || !strings.HasPrefix(string(c.handoffOut), "status error 408") || !c.handoffClose {
		t.Fatalf("got %q %v, handoff %q close=%v", out, action, c.handoffOut, c.handoffClose)
	}
}

// The loop writes little on one connection, so its writes never stall:
// it answers until its budget is spent and leaves the rest to a session.
func TestOutputBudgetDetaches(t *testing.T) {
	s, f, c := newFake(t)
	pong := len("status ok 200 pong\n")
	out, action := s.data(f, []byte(strings.Repeat("command ping\n", 400)))
	answered := len(c.handoffOut) / pong
	if out != nil || action != evio.Detach || answered != loopOutputBudget/pong+1 {
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
	s, f, c := newFake(t)
	in := []byte(strings.Repeat("command help\n", 65000/len("command help\n")))
	out, action := s.data(f, in)
	held := len(out) + len(c.handoffOut)
	if action != evio.Detach || held > loopOutputBudget+MaxReplyBytes {
		t.Fatalf("%v with %d bytes of output held, want Detach and at most %d", action, held, loopOutputBudget+MaxReplyBytes)
	}
	if c.framer.Buffered() == 0 {
		t.Fatal("every line answered at once")
	}
}

// A half-received line makes the loop detach: evio would close on EOF.
func TestPartialLineDetaches(t *testing.T) {
	s, f, _ := newFake(t)
	out, action := s.data(f, []byte("command ping\ncommand pi"))
	if string(out) != "status ok 200 pong\n" || action != evio.Detach {
		t.Fatalf("got %q %v", out, action)
	}
}
