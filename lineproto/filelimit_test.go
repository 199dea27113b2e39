// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The child process behind TestFileLimit: a server under an open-file limit
// of 64, with or without the connection cap. It prints its address, then
// exits 0 when its stdin closes, or 3 if Serve fails.
func TestFileLimitChild(t *testing.T) {
	mode := os.Getenv("LINEPROTO_FILELIMIT_CHILD")
	if mode == "" {
		t.Skip("run by TestFileLimit")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 64, Max: 64}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.MaxConns, cfg.MaxConnsPerIP = 1000, 1000
	if mode == "capped" {
		cfg.MaxConns, _ = CapToFileLimit(cfg.MaxConns, 24+cfg.LingeringRefusals)
	}
	s := NewServer(cfg, &testHandler{}, zerolog.Nop())
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	fmt.Printf("addr %s max %d\n", s.Addr(), cfg.MaxConns)
	stdinClosed := make(chan struct{})
	go func() { bufio.NewReader(os.Stdin).ReadString('\n'); close(stdinClosed) }()
	select {
	case err := <-served:
		fmt.Println("serve:", err)
		os.Exit(3)
	case <-stdinClosed:
		s.Shutdown(context.Background())
		os.Exit(0)
	}
}

// startChild runs TestFileLimitChild and returns its address.
func startChild(t *testing.T, mode string) (*exec.Cmd, string, func() error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileLimitChild$")
	cmd.Env = append(os.Environ(), "LINEPROTO_FILELIMIT_CHILD="+mode)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "addr ") {
		t.Fatalf("child said %q, %v", line, err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, strings.Fields(line)[1], func() error { stdin.Close(); return cmd.Wait() }
}

// flood opens n connections and returns how many got a 503.
func flood(t *testing.T, addr string, n int) (refused int, conns []net.Conn) {
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break // the uncapped server is gone
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("command ping\n"))
		buf := make([]byte, 200)
		n, _ := c.Read(buf)
		if strings.HasPrefix(string(buf[:n]), "status error 503") {
			refused++
		}
	}
	return refused, conns
}

// evio defect 4: an accept that fails with EMFILE stops the whole server.
// With the connection cap below the file limit, the extra connections are
// refused with 503 and the server keeps serving; without it, Serve fails
// and the process exits non-zero instead of hanging.
func TestFileLimit(t *testing.T) {
	_, addr, stop := startChild(t, "capped")
	refused, conns := flood(t, addr, 100)
	if refused == 0 || len(conns) != 100 {
		t.Fatalf("%d of %d connections refused, want some", refused, len(conns))
	}
	for _, c := range conns {
		c.Close()
	}
	c := dial(t, addr)
	send(t, c, "command ping\n")
	if got := readOnce(t, c); got != "status ok 200 pong\n" {
		t.Fatalf("after the flood: %q", got)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatalf("capped server: %v", err)
	}

	cmd, addr, _ := startChild(t, "uncapped")
	flood(t, addr, 100)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
		t.Fatalf("uncapped server under EMFILE: %v, want exit code 3 from a failed Serve", err)
	}
}
