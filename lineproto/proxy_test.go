// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/pires/go-proxyproto"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/clientnet"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// proxyHeader formats a PROXY header of the given version that carries
// client as the source address.
func proxyHeader(t *testing.T, version byte, client string) []byte {
	t.Helper()
	src := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(client))
	dst := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10023}
	b, err := proxyproto.HeaderProxyFromAddrs(version, src, dst).Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newProxyFake is newFake with the fake's address (127.0.0.1) trusted or not.
func newProxyFake(t *testing.T, trusted bool) (*Server, *fakeLoop, *conn) {
	t.Helper()
	cfg := testConfig()
	if trusted {
		cfg.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/30")}
	}
	return newFakeWith(t, cfg, &testHandler{})
}

// A trusted header, whole or split at any byte, gives the connection the
// address it carries, and the command after it (no newline, as the seed's
// client sends it) is answered.
func TestProxyHeaderSplitAtEveryByte(t *testing.T) {
	for _, tc := range []struct {
		version byte
		client  string
		want    string
	}{
		{1, "192.0.2.7:51000", "192.0.2.7"},
		{2, "192.0.2.7:51000", "192.0.2.7"},
		{1, "[2001:db8::7]:51000", "2001:db8::7"},
		{2, "[2001:db8::7]:51000", "2001:db8::7"},
	} {
		hdr := proxyHeader(t, tc.version, tc.client)
		input := append(hdr, "command ping\n"...)
		for split := 0; split <= len(hdr); split++ {
			_, f, c := newProxyFake(t, true)
			var out []byte
			for _, part := range [][]byte{input[:split], input[split:]} {
				if len(part) == 0 {
					continue
				}
				o, action := f.data(c, part)
				if action != evloop.None {
					t.Fatalf("v%d split %d: action %v, output %q", tc.version, split, action, o)
				}
				out = append(out, o...)
			}
			if c.remote.String() != tc.want {
				t.Fatalf("v%d split %d: remote %s, want %s", tc.version, split, c.remote, tc.want)
			}
			if string(out) != "status ok 200 pong\n" {
				t.Fatalf("v%d split %d: output %q", tc.version, split, out)
			}
		}
	}
}

// A v2 LOCAL header (HAProxy's health checks) and a connection without a
// header keep the socket's address.
func TestProxyLocalAndNoHeaderKeepSocketAddress(t *testing.T) {
	local, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL}).Format()
	if err != nil {
		t.Fatal(err)
	}
	for _, input := range [][]byte{append(local, "command ping\n"...), []byte("command ping\n")} {
		_, f, c := newProxyFake(t, true)
		out, _ := f.data(c, input)
		if string(out) != "status ok 200 pong\n" || c.remote.String() != "127.0.0.1" {
			t.Fatalf("%q: output %q, remote %s", input, out, c.remote)
		}
	}
}

// A header from an address not in ProxyFrom, or a malformed one, is a 400
// that closes the connection (through a session: evio's close could reset).
func TestProxyHeaderRefused(t *testing.T) {
	cases := []struct {
		trusted bool
		input   []byte
	}{
		{false, proxyHeader(t, 1, "192.0.2.7:51000")},
		{false, proxyHeader(t, 2, "192.0.2.7:51000")},
		{true, []byte("PROXY TCP4 192.0.2.7 nonsense\r\n")},
		{true, []byte("PROXY " + strings.Repeat("x", 120))},
	}
	for _, tc := range cases {
		_, f, c := newProxyFake(t, tc.trusted)
		out, action := f.data(c, append(tc.input, "command ping"...))
		if action != evloop.Detach || len(out) != 0 || !c.handoffClose {
			t.Fatalf("%q: %q %v, want a detach that closes", tc.input, out, action)
		}
		if got := string(c.handoffOut); !strings.HasPrefix(got, "status error 400 ") {
			t.Fatalf("%q: reply %q", tc.input, got)
		}
		if c.remote.String() != "127.0.0.1" {
			t.Fatalf("%q: remote became %s", tc.input, c.remote)
		}
	}
}

// The per-address connection limit counts the carried address.
func TestProxyHeaderCountsCarriedAddress(t *testing.T) {
	s, f, c := newProxyFake(t, true)
	f.data(c, proxyHeader(t, 2, "192.0.2.7:51000"))
	if got := s.limits.perIP[clientnet.Of(c.remote)]; got != 1 {
		t.Fatalf("192.0.2.7 counted %d times, want 1", got)
	}
	if got := s.limits.perIP[clientnet.Of(netip.MustParseAddr("127.0.0.1"))]; got != 0 {
		t.Fatalf("127.0.0.1 still counted %d times", got)
	}
}

// Over a real socket: a v2 header and then a command without newline, as
// HAProxy forwards the seed's client. The reply comes and the log names the
// carried address. A blocking command carries it to the session too.
func TestProxyHeaderOverSocket(t *testing.T) {
	cfg := testConfig()
	cfg.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	logs := &logcode.Sink{}
	s := NewServer(cfg, &testHandler{}, zerolog.New(logs))
	go s.Serve()
	var stop sync.Once
	shutdown := func() { stop.Do(func() { s.Shutdown(context.Background()) }) }
	t.Cleanup(shutdown)
	for _, verb := range []string{"ping", "store v 1"} {
		c := dial(t, s.Addr().String())
		send(t, c, string(proxyHeader(t, 2, "198.51.100.9:40000"))+"command "+verb)
		if got := readOnce(t, c); !strings.Contains(got, "status ok") {
			t.Fatalf("%s: reply %q", verb, got)
		}
		c.Close()
	}
	shutdown() // every entry is written
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var e struct{ Code, Remote, Verb string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Code == logcode.CommandAnswered {
			n++
			if e.Remote != "198.51.100.9" {
				t.Errorf("%s logged from %q, want 198.51.100.9", e.Verb, e.Remote)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d %s entries, want 2:\n%s", n, logcode.CommandAnswered, logs)
	}
}

// Over a real socket, a header from an untrusted address gets a 400 and a
// clean end (no reset), and the server keeps serving.
func TestUntrustedProxyHeaderOverSocket(t *testing.T) {
	_, addr := startServer(t, testConfig(), &testHandler{})
	c := dial(t, addr)
	send(t, c, string(proxyHeader(t, 1, "198.51.100.9:40000"))+"command ping")
	if got := readAll(t, c); !strings.HasPrefix(got, "status error 400 ") || strings.Count(got, "\n") != 1 {
		t.Fatalf("reply %q", got)
	}
	c2 := dial(t, addr)
	send(t, c2, "command ping")
	if got := readOnce(t, c2); got != "status ok 200 pong\n" {
		t.Fatalf("after: %q", got)
	}
}
