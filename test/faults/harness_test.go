// SPDX-License-Identifier: Apache-2.0

//go:build faults

// Package faults runs the built server (bin/keychest-lined) against its own
// PostgreSQL cluster and breaks things: the database goes down, the server
// is killed, floods and hostile input arrive. Run with "make test-faults"
// (part of "make test"); the figures go to docs/reliability.md.
package faults

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	root     = mustAbs("../..")
	binary   = filepath.Join(root, "bin/keychest-lined")
	pgDir    = filepath.Join(root, ".local/pgfaults")
	adminURL string
)

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(binary); err != nil {
		fmt.Fprintln(os.Stderr, "faults: build the server first (make build)")
		os.Exit(2)
	}
	url, err := pg("start")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(2)
	}
	adminURL = strings.Replace(url, "/keychest?", "/postgres?", 1)
	code := m.Run()
	pg("stop")
	os.Exit(code)
}

// pg runs scripts/pg.sh on the faults cluster.
func pg(action string) (string, error) {
	out, err := exec.Command(filepath.Join(root, "scripts/pg.sh"), action, pgDir).Output()
	if err != nil {
		return "", fmt.Errorf("pg.sh %s: %v", action, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// newDB creates a database for one test and returns its URL.
func newDB(t *testing.T) string {
	t.Helper()
	var raw [5]byte
	rand.Read(raw[:])
	name := "faults_" + hex.EncodeToString(raw[:])
	sql(t, adminURL, "CREATE DATABASE "+name)
	t.Cleanup(func() { sqlQuiet(adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return strings.Replace(adminURL, "/postgres?", "/"+name+"?", 1)
}

func sql(t *testing.T, url, q string, args ...any) {
	t.Helper()
	if err := sqlQuiet(url, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func sqlQuiet(url, q string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, q, args...)
	return err
}

// count runs a counting query.
func count(t *testing.T, url, q string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// server is one running keychest-lined process.
type server struct {
	cmd      *exec.Cmd
	addr     string
	httpAddr string
	log      string
	exited   chan error
}

var listenRE = regexp.MustCompile(`"listen":"([^"]+)","http":"([^"]+)"`)

// start runs the server on dbURL with extra KEY=value settings.
func start(t *testing.T, dbURL string, env ...string) *server {
	t.Helper()
	s := &server{log: filepath.Join(t.TempDir(), "server.log"), exited: make(chan error, 1)}
	logFile, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(binary)
	s.cmd.Env = append(os.Environ(), "KEYCHEST_DATABASE_URL="+dbURL, "KEYCHEST_LISTEN=127.0.0.1:0",
		"KEYCHEST_HTTP_LISTEN=127.0.0.1:0", "KEYCHEST_MAX_CONNS_PER_IP=100000",
		"KEYCHEST_LIMIT_KEYS_PER_IP_HOUR=0", "KEYCHEST_LIMIT_CLAIMS_PER_IP_HOUR=0",
		"KEYCHEST_LIMIT_MAILS_PER_DAY=100000000", "KEYCHEST_LIMIT_UNCONFIRMED_KEYS=100000000",
		"KEYCHEST_MONITOR_PORTS=1-65535")
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() { s.cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(s.log)
		if m := listenRE.FindSubmatch(b); m != nil {
			s.addr, s.httpAddr = string(m[1]), string(m[2])
			return s
		}
		select {
		case err := <-s.exited:
			t.Fatalf("server exited: %v\n%s", err, b)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("server did not start")
	return nil
}

// stop sends a signal and returns the exit code.
func (s *server) stop(t *testing.T, sig syscall.Signal, within time.Duration) int {
	t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("server still running %s after %s", within, sig)
		return -1
	}
}

// do sends one command on a new connection and returns the status line and
// the data, if any.
func do(addr, line string, timeout time.Duration) (status, data string, err error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", "", err
	}
	r := bufio.NewReader(c)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return "", data, err
		}
		l = strings.TrimSuffix(l, "\n")
		if d, ok := strings.CutPrefix(l, "data "); ok {
			data = d
			continue
		}
		return l, data, nil
	}
}
