// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"net"
	"testing"

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
func (f *fakeConn) Wake() { f.wakes <- struct{}{} }

// script is a Handler whose one Session answers Data from a list of
// replies, and records what the loop called.
type script struct {
	conn    Conn
	replies []reply
	calls   []string
	closed  bool
}

type reply struct {
	out    string
	action Action
}

func (s *script) Serving([]net.Addr) {}
func (s *script) Open(c Conn, _ net.Addr) (Session, []byte, Action) {
	s.conn = c
	return s, nil, None
}
func (s *script) Data(in []byte) ([]byte, Action) {
	s.calls = append(s.calls, string(in))
	if len(s.replies) == 0 {
		return nil, None
	}
	r := s.replies[0]
	s.replies = s.replies[1:]
	return []byte(r.out), r.action
}
func (s *script) Detached(net.Conn, error) {}
func (s *script) Closed()                  { s.closed = true }

func newFake(t *testing.T, replies ...reply) (*Loop, *fakeConn, *script) {
	t.Helper()
	h := &script{replies: replies}
	l := New(h, zerolog.Nop())
	f := &fakeConn{wakes: make(chan struct{}, 1000)}
	l.opened(f)
	t.Cleanup(func() { l.closed(f, nil) })
	return l, f, h
}

// evio defect 1: a wake can be lost. The connection wakes again until the
// loop has run Data for it.
func TestLostWakeIsRepeated(t *testing.T) {
	l, f, h := newFake(t)
	h.conn.Wake()
	for i := 0; i < 3; i++ { // the first wake and two repeats, none seen by a loop
		<-f.wakes
	}
	l.data(f, nil) // the loop finally sees one
	if f.ctx.(*conn).wakePending.Load() {
		t.Fatal("wake still pending after Data ran")
	}
}

// Once the loop has let a connection go, Wake does nothing.
func TestNoWakeAfterClosed(t *testing.T) {
	l, f, h := newFake(t)
	l.closed(f, nil)
	h.conn.Wake()
	if len(f.wakes) != 0 || !h.closed {
		t.Fatalf("%d wakes after Closed (closed=%v)", len(f.wakes), h.closed)
	}
}

// evio defect 2: a wake overwrites evio's pending action. Once Close or
// Detach is decided, every later callback returns it again, and the
// session is not called any more.
func TestActionIsSticky(t *testing.T) {
	l, f, h := newFake(t, reply{"", Detach}, reply{"late", None})
	if _, action := l.data(f, []byte("command store v 1\n")); action != evio.Detach {
		t.Fatalf("action %v, want Detach", action)
	}
	for i := 0; i < 3; i++ {
		if out, action := l.data(f, nil); action != evio.Detach || out != nil {
			t.Fatalf("wake %d: %q %v, want Detach and no output", i, out, action)
		}
	}
	if len(h.calls) != 1 {
		t.Fatalf("session called %d times: %q", len(h.calls), h.calls)
	}
}

// evio defect 2: a wake overwrites evio's pending output. Output returned
// is queued until the next read (evio reads only once it has written all
// output), and the session can tell (Conn.OutputQueued).
func TestOutputQueuedUntilNextRead(t *testing.T) {
	l, f, h := newFake(t, reply{"status ok 200 pong\n", None}, reply{"", None}, reply{"", None})
	if h.conn.OutputQueued() {
		t.Fatal("queued before any output")
	}
	if out, action := l.data(f, []byte("command ping\n")); string(out) != "status ok 200 pong\n" || action != evio.None {
		t.Fatalf("got %q %v", out, action)
	}
	l.data(f, nil)
	if !h.conn.OutputQueued() {
		t.Fatal("output not queued after a wake")
	}
	l.data(f, []byte("x"))
	if h.conn.OutputQueued() {
		t.Fatal("output still queued after a read")
	}
}

// A connection evio made up (no descriptor) cannot pause; start is not
// called.
func TestPauseWithoutSocketRefused(t *testing.T) {
	_, _, h := newFake(t)
	if h.conn.Pause(false, func(Paused) bool { t.Fatal("start called"); return true }) {
		t.Fatal("paused")
	}
}
