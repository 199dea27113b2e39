// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// Issue 20, defect 4: the first bytes of a PROXY signature held a
// connection for good, from any peer. These tests run a real listener with
// short timeouts and send raw bytes.

// whoamiHandler answers "whoami" with the address the server gives the
// client, and everything else as testHandler does.
type whoamiHandler struct{ testHandler }

func (h *whoamiHandler) Serve(ctx context.Context, req *Request) Reply {
	if req.Verb == "whoami" {
		return OK(req.Remote.String())
	}
	return h.testHandler.Serve(ctx, req)
}

// signaturePrefixes are proper prefixes of the v1 ("PROXY") and v2
// signatures.
var signaturePrefixes = []string{"P", "PROX", "\r\n\r\n\x00\r\nQU"}

// readToEnd reads until the server closes, within limit; it fails the
// test if the connection is still open by then.
func readToEnd(t *testing.T, c net.Conn, limit time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	b, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("still open after %v, having sent %q", limit, b)
	}
	if err != nil {
		t.Fatalf("read: %v (after %q)", err, b)
	}
	return string(b)
}

// (a) From a peer that is not a trusted proxy, the first bytes of a
// signature are a line like any other: after the quiet period they get the
// reply to a bad line, and the idle timeout closes the connection.
func TestUntrustedSignaturePrefixIsIdleTimedOut(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout = 200 * time.Millisecond
	_, addr := startServer(t, cfg, &testHandler{})
	for _, prefix := range signaturePrefixes {
		c := dial(t, addr)
		send(t, c, prefix)
		got := readToEnd(t, c, 3*time.Second)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if last := lines[len(lines)-1]; last != "status error 408 idle for 200ms, closing" {
			t.Errorf("%q: got %q, want the idle timeout last", prefix, got)
		}
		for _, line := range lines[:len(lines)-1] {
			if !strings.HasPrefix(line, "status error 400 ") {
				t.Errorf("%q: got %q, want a 400 for each bad line", prefix, got)
			}
		}
	}
}

// (a) The same bytes followed by a half-close get the reply to a bad line
// and a clean end, as any unfinished last line does.
func TestUntrustedSignaturePrefixThenEOFIsAnswered(t *testing.T) {
	_, addr := startServer(t, testConfig(), &testHandler{})
	c := dial(t, addr)
	send(t, c, "PROX")
	c.CloseWrite()
	if got := readToEnd(t, c, 3*time.Second); !strings.HasPrefix(got, "status error 400 ") || strings.Count(got, "\n") != 1 {
		t.Fatalf("got %q, want one 400", got)
	}
}

// (a) In the loop: the first bytes of a signature from a peer that is not
// a trusted proxy are an unfinished line, which leaves the loop for a
// session (quiet period, EOF), as any unfinished line does.
func TestUntrustedSignaturePrefixLeavesTheLoop(t *testing.T) {
	for _, prefix := range append(signaturePrefixes, "\r\n") {
		_, f, c := newProxyFake(t, false)
		out, action := f.data(c, []byte(prefix))
		if action != evloop.Detach || len(out) > 0 || c.handoffClose || len(c.handoffOut) > 0 {
			t.Fatalf("%q: %q %v, want a detach", prefix, out, action)
		}
	}
}

// (b) Connections that sent the first bytes of a signature fill MaxConns
// only until the idle timeout: an honest client is served after it.
func TestSignaturePrefixesDoNotHoldConnectionSlots(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConns, cfg.IdleTimeout = 3, 200*time.Millisecond
	_, addr := startServer(t, cfg, &testHandler{})
	var held []net.Conn
	for i := 0; i < cfg.MaxConns; i++ {
		c := dial(t, addr)
		send(t, c, "PROX")
		held = append(held, c)
	}
	// One loop accepts in order: the held connections are counted first.
	if got := readToEnd(t, dial(t, addr), 3*time.Second); got != "status error 503 too many connections, retry later\n" {
		t.Fatalf("while held: %q", got)
	}
	for _, c := range held {
		readToEnd(t, c, 3*time.Second)
		c.Close()
	}
	// The server releases a slot once its side is closed too: retry the
	// honest client until then, within a bound.
	for give := time.Now().Add(2 * time.Second); ; {
		c := dial(t, addr)
		send(t, c, "command ping")
		got := readOnce(t, c)
		c.Close()
		if got == "status ok 200 pong\n" {
			return
		}
		if got != "status error 503 too many connections, retry later\n" || time.Now().After(give) {
			t.Fatalf("honest client: %q", got)
		}
	}
}

// trustedConfig trusts the test's own address (127.0.0.1) as a proxy.
func trustedConfig() Config {
	cfg := testConfig()
	cfg.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	return cfg
}

// (c) A trusted proxy that begins a header and sends nothing more is
// closed at the header deadline, long before the idle timeout.
func TestTrustedPartialHeaderClosedAtDeadline(t *testing.T) {
	cfg := trustedConfig()
	cfg.ProxyHeaderTimeout = 200 * time.Millisecond
	_, addr := startServer(t, cfg, &testHandler{})
	v2 := string(proxyHeader(t, 2, "192.0.2.7:51000"))
	for _, partial := range append(signaturePrefixes, "PROXY", "PROXY TCP4 192.0.2.7 ", v2[:14], v2[:20]) {
		c := dial(t, addr)
		start := time.Now()
		send(t, c, partial)
		if got := readToEnd(t, c, 3*time.Second); got != "status error 408 PROXY header not complete within 200ms\n" {
			t.Errorf("%q: got %q", partial, got)
		}
		if took := time.Since(start); took >= cfg.IdleTimeout {
			t.Errorf("%q: closed after %v", partial, took)
		}
	}
}

// (c) Bytes that keep coming do not move the header deadline, which
// counts from the header's first byte. A fake connection: the test holds
// the clock of the header.
func TestTrustedHeaderDeadlineCountsFromFirstByte(t *testing.T) {
	_, f, c := newProxyFake(t, true)
	if out, action := f.data(c, []byte("PROX")); action != evloop.None || len(out) > 0 {
		t.Fatalf("first bytes: %q %v", out, action)
	}
	c.headerAt = c.headerAt.Add(-DefaultProxyHeaderTimeout)
	if out, action := f.data(c, []byte("Y TCP4 192.0.2.7 ")); action != evloop.None || len(out) > 0 {
		t.Fatalf("more bytes: %q %v", out, action)
	}
	select { // the timer points at the deadline, which has passed
	case <-f.wakes:
	case <-time.After(2 * time.Second):
		t.Fatal("no wake at the header deadline")
	}
	if _, action := f.data(c, nil); action != evloop.Detach || !c.handoffClose {
		t.Fatalf("action %v, want a detach that closes", action)
	}
	if got := string(c.handoffOut); got != "status error 408 PROXY header not complete within 5s\n" {
		t.Fatalf("reply %q", got)
	}
}

// (d) A trusted proxy's header split over two writes, then a command
// without newline (the seed's client through HAProxy), within the header
// deadline: the command is answered for the carried address.
func TestTrustedSplitHeaderOverSocket(t *testing.T) {
	cfg := trustedConfig()
	cfg.ProxyHeaderTimeout = 2 * time.Second
	_, addr := startServer(t, cfg, &whoamiHandler{})
	for _, version := range []byte{1, 2} {
		hdr := string(proxyHeader(t, version, "192.0.2.7:51000"))
		c := dial(t, addr)
		c.SetNoDelay(true)
		send(t, c, hdr[:9])
		send(t, c, hdr[9:]+"command whoami")
		if got := readOnce(t, c); got != "status ok 200 192.0.2.7\n" {
			t.Errorf("v%d: got %q", version, got)
		}
	}
}

// (e) A peer that is not a trusted proxy cannot pass another address with
// a PROXY header: first on the connection, whole or in pieces (within the
// quiet period, as a line's pieces), it is refused with a 400 and a close,
// and nothing after it runs; later, it is a bad line like any other, and
// what runs after it runs for the peer's own address.
func TestUntrustedProxyHeaderCannotSpoof(t *testing.T) {
	cfg := testConfig()
	cfg.IdleTimeout, cfg.QuietPeriod = 300*time.Millisecond, 2*time.Second
	_, addr := startServer(t, cfg, &whoamiHandler{})
	v2 := string(proxyHeader(t, 2, "192.0.2.7:51000"))
	const refused = "status error 400 PROXY header from 127.0.0.1, which is not a trusted proxy\n"
	for _, parts := range [][]string{
		{"PROXY TCP4 192.0.2.7 127.0.0.1 5555 10023\r\ncommand whoami\n"},
		{"PROX", "Y TCP4 192.0.2.7 127.0.0.1 5555 10023\r\ncommand whoami\n"},
		{v2 + "command whoami\n"},
		{v2[:4], v2[4:7], v2[7:] + "command whoami\n"},
	} {
		c := dial(t, addr)
		c.SetNoDelay(true)
		for _, p := range parts {
			send(t, c, p)
		}
		if got := readToEnd(t, c, 3*time.Second); got != refused {
			t.Errorf("%q: got %q", parts, got)
		}
	}
	c := dial(t, addr)
	send(t, c, "command whoami\nPROXY TCP4 192.0.2.7 127.0.0.1 5555 10023\r\ncommand whoami\n")
	got := readToEnd(t, c, 3*time.Second)
	lines := strings.Split(got, "\n")
	if len(lines) != 5 || lines[0] != "status ok 200 127.0.0.1" || !strings.HasPrefix(lines[1], "status error 400 ") ||
		lines[2] != "status ok 200 127.0.0.1" || lines[3] != "status error 408 idle for 300ms, closing" {
		t.Errorf("later: got %q", got)
	}
}

// A trusted proxy's unfinished header does not hold up Shutdown: the
// connection gets 503 and a close.
func TestShutdownEndsUnfinishedHeader(t *testing.T) {
	s := NewServer(trustedConfig(), &testHandler{}, zerolog.Nop())
	go s.Serve()
	done := make(chan error, 1)
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Shutdown still waits")
		}
	})
	c := dial(t, s.Addr().String())
	send(t, c, "PROX")
	// One loop accepts in order: once the next connection is answered,
	// the server holds the first, which Shutdown must then end.
	next := dial(t, s.Addr().String())
	send(t, next, "command ping")
	if got := readOnce(t, next); got != "status ok 200 pong\n" {
		t.Fatalf("next: %q", got)
	}
	go func() { done <- s.Shutdown(context.Background()) }()
	if got := readToEnd(t, c, 3*time.Second); got != "status error 503 server shutting down, retry shortly\n" {
		t.Fatalf("got %q", got)
	}
	c.Close()
	readToEnd(t, next, 3*time.Second) // the idle one is told 503 too
	next.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	done <- nil
}
