// SPDX-License-Identifier: Apache-2.0

package evloop

import (
	"bytes"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

// A reply larger than the socket's send buffer does not hold up whoever
// answers (the group-commit writer, for an add): writeReply returns at
// once, and the rest follows as the client reads; written comes after the
// last byte.
func TestWriteReplyDoesNotWaitForTheClient(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	server, client := fds[0], os.NewFile(uintptr(fds[1]), "client")
	defer syscall.Close(server)
	defer client.Close()
	if err := syscall.SetsockoptInt(server, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetNonblock(server, true); err != nil {
		t.Fatal(err)
	}
	reply := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB, far more than the buffers hold
	written := make(chan struct{})
	writeReply(server, reply, time.Now().Add(time.Minute), func() { close(written) })
	// writeReply has returned although the client has read nothing yet.
	select {
	case <-written:
		t.Fatal("written before the client read the rest")
	default:
	}
	got, err := io.ReadAll(io.LimitReader(client, int64(len(reply))))
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("read %d bytes (%v), want the %d of the reply", len(got), err, len(reply))
	}
	select {
	case <-written:
	case <-time.After(10 * time.Second):
		t.Fatal("written never called")
	}
}

// pausedPair returns a paused connection on one end of a socket pair, out
// of a real epoll set (as Pause leaves it), on a loop whose wakes go to the
// fake's channel.
func pausedPair(t *testing.T) (*paused, *fakeConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	poll, err := syscall.EpollCreate1(0)
	if err != nil {
		t.Fatal(err)
	}
	dup, err := syscall.Dup(fds[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]); syscall.Close(poll) })
	_, f, _ := newFake(t)
	return &paused{c: f.ctx.(*conn), fd: dup, sock: fds[0], poll: poll}, f
}

// A reply the loop has not looked for yet: the answerer puts the socket
// back itself and wakes nobody; the loop settles at its next event.
func TestPausedReplyPutsSocketBackWithoutWake(t *testing.T) {
	p, f := pausedPair(t)
	if !p.finish(false) {
		t.Fatal("the answerer did not put the socket back")
	}
	if done, closing := p.Settle(); !done || closing {
		t.Fatalf("settle: done=%v closing=%v", done, closing)
	}
	if len(f.wakes) != 0 {
		t.Fatal("woken")
	}
}

// A reply the loop already looked for (a timer woke it meanwhile), or one
// that closes: the answerer leaves the socket to the loop and wakes it;
// the loop puts it back itself when it settles.
func TestPausedReplyLookedForWakesTheLoop(t *testing.T) {
	for _, looked := range []bool{true, false} {
		p, _ := pausedPair(t)
		if looked {
			if done, _ := p.Settle(); done {
				t.Fatal("done before the reply")
			}
		}
		if p.finish(!looked) {
			t.Fatalf("looked=%v: the answerer put the socket back", looked)
		}
		if done, closing := p.Settle(); !done || closing == looked {
			t.Fatalf("looked=%v: settle done=%v closing=%v", looked, done, closing)
		}
		if p.c.lost {
			t.Fatalf("looked=%v: lost", looked)
		}
	}
}

// Once the loops stop, the answerer no longer touches their epoll sets.
func TestPausedReplyAfterStopLeavesSocketToLoop(t *testing.T) {
	p, _ := pausedPair(t)
	p.c.loop.Stop()
	if p.finish(false) {
		t.Fatal("the answerer put the socket back after Stop")
	}
}
