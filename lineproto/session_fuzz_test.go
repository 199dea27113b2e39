// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var (
	fuzzOnce sync.Once
	fuzzAddr string
)

// fuzzServer is one server shared by every input of FuzzSession.
func fuzzServer() string {
	fuzzOnce.Do(func() {
		cfg := testConfig()
		cfg.MaxConns, cfg.MaxConnsPerIP = 10000, 10000
		s := NewServer(cfg, &testHandler{}, zerolog.Nop())
		go s.Serve()
		fuzzAddr = s.Addr().String()
	})
	return fuzzAddr
}

// FuzzSession replays arbitrary bytes through a real connection to a real
// server, as a client that sends them and half-closes. Whatever comes back
// must be whole reply lines; the server must go on answering.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"command ping\n", "command store v 1", "command quit\ncommand ping\n",
		"command ping\r\n\r\n\r", "\x00\xff command\n", strings.Repeat("x", 200),
		"command store v 1\ncommand panic where loop\ncommand panic\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		addr := fuzzServer()
		out := exchangeAll(t, addr, input)
		for _, line := range strings.SplitAfter(out, "\n") {
			if line == "" {
				continue
			}
			if !strings.HasSuffix(line, "\n") || !(strings.HasPrefix(line, "data ") || strings.HasPrefix(line, "status ")) {
				t.Fatalf("input %q: reply line %q", input, line)
			}
		}
		if got := exchangeAll(t, addr, []byte("command ping\n")); got != "status ok 200 pong\n" {
			t.Fatalf("after input %q the server answered ping with %q", input, got)
		}
	})
}

func exchangeAll(t *testing.T, addr string, input []byte) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT: thousands of inputs a second
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(input)
	c.(*net.TCPConn).CloseWrite()
	out, err := io.ReadAll(c) // the server closes gracefully: never a reset
	if err != nil {
		t.Fatalf("input %q: %v", input, err)
	}
	return string(out)
}
