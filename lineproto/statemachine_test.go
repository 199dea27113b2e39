// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// These tests drive the connection's state machine through a fakeLoop
// (conn_test.go), without evio, and a detached connection through a
// loopback socket pair.

// socketPair returns the two ends of a loopback TCP connection: the
// server's, for a session, and the client's.
func socketPair(t *testing.T) (server net.Conn, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client = dial(t, ln.Addr().String())
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// waitClosed waits until no connection of s is open: its session is over.
func waitClosed(t *testing.T, s *Server) {
	t.Helper()
	for give := time.Now().Add(5 * time.Second); s.OpenConns() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(give) {
			t.Fatalf("%d connections still open", s.OpenConns())
		}
	}
}

// detach hands c to a session over a socket pair, as the loop does after
// Detach, and returns the client's end.
func detach(t *testing.T, c *conn) *net.TCPConn {
	t.Helper()
	server, client := socketPair(t)
	c.Detached(server, nil)
	return client
}

// A whole line is answered in the loop, and the connection stays there.
func TestMachineLine(t *testing.T) {
	_, f, c := newFake(t)
	out, action := f.data(c, []byte("command ping\n"))
	if string(out) != "status ok 200 pong\n" || action != evloop.None {
		t.Fatalf("got %q %v", out, action)
	}
	out, action = f.data(c, []byte("command ping\r\ncommand ping\n"))
	if string(out) != strings.Repeat("status ok 200 pong\n", 2) || action != evloop.None {
		t.Fatalf("pipelined: got %q %v", out, action)
	}
}

// A line split over two reads: its first part makes the loop detach (the
// loop would close on EOF), and the session answers once the rest comes.
func TestMachineSplitLine(t *testing.T) {
	cfg := testConfig()
	cfg.QuietPeriod = time.Second // the rest comes long before
	s, f, c := newFakeWith(t, cfg, &testHandler{})
	out, action := f.data(c, []byte("command pi"))
	if len(out) != 0 || action != evloop.Detach || len(c.handoffOut) != 0 || c.handoffClose {
		t.Fatalf("got %q %v, handoff %q", out, action, c.handoffOut)
	}
	client := detach(t, c)
	send(t, client, "ng\n")
	if got := readOnce(t, client); got != "status ok 200 pong\n" {
		t.Fatalf("session answered %q", got)
	}
	client.Close()
	waitClosed(t, s)
	if s.Detaches() != 1 {
		t.Fatalf("%d detaches", s.Detaches())
	}
}

// A blocking line is answered in flight: the loop returns nothing while
// the worker runs (not even on a wake), the reply is written from
// outside, and the loop goes on with the next line.
func TestMachineLineInFlightThenReply(t *testing.T) {
	h := &testHandler{gate: make(chan struct{})}
	_, f, c := newFakeWith(t, testConfig(), h)
	f.canPause = true
	out, action := f.data(c, []byte("command store v 1\n"))
	if len(out) != 0 || action != evloop.None || f.paused == nil || c.inflight == nil {
		t.Fatalf("got %q %v, paused %v", out, action, f.paused != nil)
	}
	if out, action := f.data(c, nil); len(out) != 0 || action != evloop.None {
		t.Fatalf("wake in flight: %q %v", out, action)
	}
	close(h.gate)
	<-f.paused.replied
	if got := string(f.paused.out); got != "data stored 1\nstatus ok 200 committed\n" || f.paused.closing {
		t.Fatalf("reply %q closing=%v", got, f.paused.closing)
	}
	if len(f.wakes) != 0 {
		t.Fatal("woken for a reply that needs no wake")
	}
	out, action = f.data(c, []byte("command ping\n"))
	if string(out) != "status ok 200 pong\n" || action != evloop.None || c.inflight != nil {
		t.Fatalf("next line: %q %v, inflight %v", out, action, c.inflight != nil)
	}
	if c.loopOut != MaxReplyBytes+len(out) {
		t.Fatalf("loop output %d, want the reply reserved and the pong", c.loopOut)
	}
}

// A line buffered behind the request in flight: the loop asks to be woken
// once the reply is written, and then answers it without new input.
func TestMachineLineBehindInFlight(t *testing.T) {
	_, f, c := newFake(t)
	f.canPause = true
	if out, action := f.data(c, []byte("command store v 1\ncommand ping\n")); len(out) != 0 || action != evloop.None {
		t.Fatalf("got %q %v", out, action)
	}
	if !f.paused.wakeWhenDone {
		t.Fatal("no wake asked for the line behind")
	}
	<-f.paused.replied
	<-f.wakes
	if out, action := f.data(c, nil); string(out) != "status ok 200 pong\n" || action != evloop.None {
		t.Fatalf("after the wake: %q %v", out, action)
	}
}

// The idle timer wakes the loop, which hands the 408 to a session; the
// session writes it and closes cleanly.
func TestMachineIdleTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout = 50 * time.Millisecond
	s, f, c := newFakeWith(t, cfg, &testHandler{})
	select {
	case <-f.wakes:
	case <-time.After(5 * time.Second):
		t.Fatal("the idle timer never woke the loop")
	}
	out, action := f.data(c, nil)
	if len(out) != 0 || action != evloop.Detach || !c.handoffClose {
		t.Fatalf("got %q %v, close=%v", out, action, c.handoffClose)
	}
	client := detach(t, c)
	if got := readAll(t, client); got != "status error 408 idle for 50ms, closing\n" {
		t.Fatalf("client read %q", got)
	}
	client.Close() // the session lingers until the client closes too
	waitClosed(t, s)
}

// Pipelined lines and the first part of one more, then the client
// half-closes: the loop answers the whole lines and detaches, and the
// session answers the last part as a line when it reads the EOF.
func TestMachineHalfCloseWithPipelinedLines(t *testing.T) {
	cfg := testConfig()
	cfg.QuietPeriod = time.Second // the EOF ends the line, not silence
	s, f, c := newFakeWith(t, cfg, &testHandler{})
	out, action := f.data(c, []byte("command ping\ncommand ping\ncommand pi"))
	if string(out) != strings.Repeat("status ok 200 pong\n", 2) || action != evloop.Detach {
		t.Fatalf("got %q %v", out, action)
	}
	client := detach(t, c)
	send(t, client, "ng")
	client.CloseWrite()
	if got := readAll(t, client); got != "status ok 200 pong\n" {
		t.Fatalf("session answered %q", got)
	}
	waitClosed(t, s)
}

// A line over the limit gets a 413 through a session, which closes
// cleanly: the client reads the reply, then the end of stream.
func TestMachineOversizeLine(t *testing.T) {
	s, f, c := newFake(t)
	out, action := f.data(c, []byte(strings.Repeat("x", testConfig().MaxLine+10)))
	if len(out) != 0 || action != evloop.Detach || !c.handoffClose {
		t.Fatalf("got %q %v, close=%v", out, action, c.handoffClose)
	}
	client := detach(t, c)
	send(t, client, "more of the same line")
	if got := readAll(t, client); got != "status error 413 line longer than 128 bytes\n" {
		t.Fatalf("client read %q", got)
	}
	client.Close()
	waitClosed(t, s)
}
