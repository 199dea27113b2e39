// SPDX-License-Identifier: Apache-2.0

package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/pgtest"
)

// TestNotifySystemd runs serve as systemd would (Type=notify): READY=1
// comes once the database is migrated and the line port answers, and
// STOPPING=1 on SIGTERM. Every entry it logs on the way, from start to
// stop, carries a code and an event_time.
func TestNotifySystemd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	var cfg Config
	if err := envconfig.Process("KEYCHEST_TEST_UNSET", &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.HTTPListen, cfg.DatabaseURL = "127.0.0.1:0", "127.0.0.1:0", pgtest.NewDatabase(t)
	var logs logcode.Sink
	exit := make(chan int, 1)
	go func() { exit <- serve(cfg, zerolog.New(&logs)) }()

	notice := func() string {
		t.Helper()
		sock.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	ready := notice()
	addr, ok := strings.CutPrefix(ready, "READY=1\nSTATUS=serving on ")
	if !ok {
		t.Fatalf("first notice %q", ready)
	}
	if got := pingAt(t, addr); got != "status ok 200 pong\n" {
		t.Fatalf("ping after READY: %q", got)
	}
	logSeveralEntries(t, addr, &logs)
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	if got := notice(); got != "STOPPING=1" {
		t.Fatalf("notice after SIGTERM: %q", got)
	}
	select {
	case code := <-exit:
		if code != 0 {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return")
	}
	seen, err := logcode.CheckEntries([]byte(logs.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{logcode.Serving, logcode.CommandAnswered, logcode.MailLogged, logcode.ShutdownRequested, logcode.Stopped} {
		if seen[code] == 0 {
			t.Errorf("no %s entry in:\n%s", code, logs.String())
		}
	}
}

// logSeveralEntries has the server log commands that succeed and fail
// and a mail (there is no SMTP server), and waits for the mail's entry.
func logSeveralEntries(t *testing.T, addr string, logs *logcode.Sink) {
	t.Helper()
	c := (&testApp{lineAddr: addr}).dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email log@example.com", "status ok 200")
	c.must("junk", "status error 400")
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), `"code":"`+logcode.MailLogged+`"`); {
		if time.Now().After(deadline) {
			t.Fatalf("the claim's mail was not logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
