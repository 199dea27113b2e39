// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Log file names in DIR.
const (
	LogFile   = "agent.log"
	SpoolFile = "spool.jsonl"
	// MaxSpool is how much of the log waits for the server; past it,
	// entries stay in the local log only.
	MaxSpool = 4 << 20
)

// NewLogger returns the agent's JSON logger, with the same keys as
// keychest-lined's: "time" (logging), "event_time" and "code" (added at
// each call site), "level", "host", "ip", "version", "pid", "message".
// Entries go to out and, for the server, to spool (when not nil).
func NewLogger(out io.Writer, spool *Spool, version string) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	w := out
	if spool != nil {
		w = io.MultiWriter(out, spool)
	}
	host, _ := os.Hostname()
	return zerolog.New(w).With().Timestamp().Str("host", host).Str("ip", hostIP()).
		Str("version", version).Int("pid", os.Getpid()).Logger()
}

// OpenLog opens where the log goes: "-" is stdout, "" is DIR/agent.log
// (mode 0600), else that file.
func OpenLog(dir, dest string) (io.WriteCloser, error) {
	switch dest {
	case "-":
		return nopCloser{os.Stdout}, nil
	case "":
		dest = filepath.Join(dir, LogFile)
	}
	return os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, fileMode)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// hostIP returns the first non-loopback IPv4 address of the host, or "".
func hostIP() string {
	for _, a := range hostAddrs() {
		if a.Is4() {
			return a.String()
		}
	}
	return ""
}

// Spool keeps log entries in DIR/spool.jsonl until the server took them.
// It is safe for concurrent use.
type Spool struct {
	mu      sync.Mutex
	path    string
	max     int64
	dropped int
}

// NewSpool returns the spool in dir.
func NewSpool(dir string) *Spool { return &Spool{path: filepath.Join(dir, SpoolFile), max: MaxSpool} }

// Write appends one entry, unless the spool is full (then it counts the
// entry as dropped; the local log still has it).
func (s *Spool) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return len(p), nil // the local log is what matters
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()+int64(len(p)) > s.max {
		s.dropped++
		return len(p), nil
	}
	f.Write(p)
	return len(p), nil
}

// Dropped returns and resets the count of entries the full spool refused.
func (s *Spool) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.dropped
	s.dropped = 0
	return n
}

// Peek returns the oldest whole lines of the spool, at most max bytes.
func (s *Spool) Peek(max int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(raw) > max {
		raw = raw[:max]
	}
	if i := bytes.LastIndexByte(raw, '\n'); i >= 0 {
		return raw[:i+1], nil
	}
	return nil, nil
}

// Drop removes the first n bytes (what Peek gave and the server took).
func (s *Spool) Drop(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	if n > len(raw) {
		return fmt.Errorf("spool: drop %d of %d bytes", n, len(raw))
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, raw[n:], fileMode); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

// hostAddrs lists the host's addresses that are not loopback.
func hostAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
