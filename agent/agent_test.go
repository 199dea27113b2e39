// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// fakeServer is the agent API of keychest-lined, in memory.
type fakeServer struct {
	mu        sync.Mutex
	fail      int // answer this many calls with 503 first
	reject    bool
	claimed   bool
	registers int
	beats     []Summary
	codes     []string
	logs      []string
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path != PathRegister && (f.reject || r.Header.Get("Authorization") != "Bearer kc-agent-key-0123456789") {
		http.Error(w, "unknown key", http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch r.URL.Path {
	case PathRegister:
		f.registers++
		json.NewEncoder(w).Encode(Registered{ID: "a-1@agents.keychest.test", APIKey: "kc-agent-key-0123456789"})
	case PathHeartbeat:
		var s Summary
		json.Unmarshal(body, &s)
		f.beats = append(f.beats, s)
		json.NewEncoder(w).Encode(Beat{ID: "a-1@agents.keychest.test", Claimed: f.claimed, Site: map[bool]string{true: "office"}[f.claimed]})
	case PathClaimCode:
		var c ClaimCodeRequest
		json.Unmarshal(body, &c)
		f.codes = append(f.codes, c.Code)
		json.NewEncoder(w).Encode(ClaimCodeReply{Expires: time.Now().Add(time.Hour)})
	case PathJobs:
		json.NewEncoder(w).Encode(JobsReply{})
	case PathLogs:
		sc := bufio.NewScanner(strings.NewReader(string(body)))
		for sc.Scan() {
			f.logs = append(f.logs, sc.Text())
		}
		json.NewEncoder(w).Encode(LogsReply{Stored: len(f.logs)})
	default:
		http.NotFound(w, r)
	}
}

// newAgent opens an agent on a fresh DIR against srv.
func newAgent(t *testing.T, srv *httptest.Server, allow string) (*Agent, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	if allow != "" {
		os.Mkdir(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "allow.conf"), []byte(allow), 0o600)
	}
	a, err := Open(Config{Dir: dir, Server: srv.URL, Version: "1.2.3", UID: os.Getuid(),
		Heartbeat: 20 * time.Millisecond, RetryBase: 10 * time.Millisecond, For: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, dir
}

// entries checks DIR/agent.log and counts its codes.
func entries(t *testing.T, dir string) (map[string]int, string) {
	t.Helper()
	raw, _ := os.ReadFile(filepath.Join(dir, LogFile))
	seen, err := logcode.CheckEntries(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var e map[string]any
		json.Unmarshal([]byte(line), &e)
		for _, k := range []string{"time", "event_time", "code", "level", "host", "ip", "version", "pid", "message"} {
			if _, ok := e[k]; !ok {
				t.Errorf("entry without %q: %s", k, line)
			}
		}
	}
	return seen, string(raw)
}

func TestOnceRegistersThenHeartbeats(t *testing.T) {
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, dir := newAgent(t, srv, "allow 10.20.0.0/16 443,636 *.corp.example\n")
	for range 2 {
		if err := a.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, IdentityFile): 0o600,
		filepath.Join(dir, LogFile): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %04o", path, err, mode)
		}
	}
	id, err := LoadIdentity(dir)
	if err != nil || id.ID != "a-1@agents.keychest.test" || id.Claimed || id.LastContact.IsZero() {
		t.Fatalf("identity %+v, %v", id, err)
	}
	if f.registers != 1 || len(f.beats) != 2 || len(f.logs) != 0 {
		t.Fatalf("registers %d, beats %d, logs %d (none before a claim)", f.registers, len(f.beats), len(f.logs))
	}
	s := f.beats[0]
	if s.Version != "1.2.3" || s.Host == "" || len(s.Allow) != 1 || s.Allow[0] != "allow 10.20.0.0/16 443,636 *.corp.example" {
		t.Fatalf("summary %+v", s)
	}
	seen, text := entries(t, dir)
	if seen[logcode.AgentRegistered] != 1 || seen[logcode.AgentOnceDone] != 2 || strings.Contains(text, id.APIKey) {
		t.Fatalf("log: %v\n%s", seen, text)
	}
	// Claimed: the spooled log is posted, then the spool is empty.
	f.claimed = true
	if err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(f.logs) < 4 || !strings.Contains(strings.Join(f.logs, "\n"), logcode.AgentClaimed) {
		t.Fatalf("posted logs: %q", f.logs)
	}
	if rest, _ := a.spool.Peek(1 << 20); strings.Contains(string(rest), logcode.AgentClaimed) {
		t.Fatalf("spool kept what was posted: %s", rest)
	}
	if id, _ := LoadIdentity(dir); !id.Claimed || id.Site != "office" {
		t.Fatalf("identity after claim: %+v", id)
	}
}

func TestClaimCode(t *testing.T) {
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, dir := newAgent(t, srv, "")
	code, exp, err := a.ClaimCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}$`).MatchString(code) || time.Until(exp) < 50*time.Minute {
		t.Fatalf("code %q, expires %v", code, exp)
	}
	if len(f.codes) != 1 || f.codes[0] != code {
		t.Fatalf("server got %q", f.codes)
	}
	seen, text := entries(t, dir)
	if seen[logcode.AgentClaimCode] != 1 || strings.Contains(text, code) {
		t.Fatalf("log: %s", text)
	}
	if code2, _, _ := a.ClaimCode(context.Background()); code2 == code {
		t.Fatal("the same code twice")
	}
}

// Run retries a failing server with back-off, logs its return, and stops
// with the context.
func TestRunBacksOffAndRecovers(t *testing.T) {
	f := &fakeServer{fail: 3}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, dir := newAgent(t, srv, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	ready := make(chan struct{})
	go func() { done <- a.Run(ctx, func() { close(ready) }) }()
	<-ready
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := len(f.beats)
		f.mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	seen, text := entries(t, dir)
	if seen[logcode.AgentStarted] != 1 || seen[logcode.AgentServerDown] != 3 || seen[logcode.AgentServerBack] != 1 || len(f.beats) < 3 {
		t.Fatalf("codes %v, beats %d\n%s", seen, len(f.beats), text)
	}
	if !strings.Contains(text, `"retry_in"`) {
		t.Fatalf("no retry_in: %s", text)
	}
}

// A 401 stops Run with ErrRejected and its code.
func TestRunStopsWhenRejected(t *testing.T) {
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, dir := newAgent(t, srv, "")
	if err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.reject = true
	if err := a.Run(context.Background(), nil); !errors.Is(err, ErrRejected) {
		t.Fatalf("Run: %v", err)
	}
	if seen, _ := entries(t, dir); seen[logcode.AgentRejected] != 1 {
		t.Fatalf("codes %v", seen)
	}
}

// allow.conf writable by others: Open refuses, with AGT0501 in the log.
func TestOpenRefusesLooseAllowConf(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, "allow.conf")
	os.WriteFile(path, []byte("allow 10.0.0.0/8 443\n"), 0o600)
	os.Chmod(path, 0o666)
	_, err := Open(Config{Dir: dir, Server: "http://127.0.0.1:1", UID: os.Getuid()})
	var oe *OwnershipError
	if !errors.As(err, &oe) || oe.Path != path {
		t.Fatalf("Open: %v", err)
	}
	seen, text := entries(t, dir)
	if seen[logcode.AgentInsecureFiles] != 1 || !strings.Contains(text, `"path":"`+path+`"`) {
		t.Fatalf("log: %s", text)
	}
	os.WriteFile(path, []byte("allow 10.0.0.0/8 http\n"), 0o600)
	os.Chmod(path, 0o600)
	if _, err := Open(Config{Dir: dir, Server: "http://127.0.0.1:1", UID: os.Getuid()}); err == nil {
		t.Fatal("a bad allow.conf opened")
	}
	if seen, _ := entries(t, dir); seen[logcode.AgentBadAllow] != 1 {
		t.Fatalf("codes %v", seen)
	}
}

func TestStatus(t *testing.T) {
	f := &fakeServer{claimed: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, dir := newAgent(t, srv, "allow 127.0.0.50/32 8443\n")
	if err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Status(&b, dir, a.Allow()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"id: a-1@agents.keychest.test\n", "claimed: yes\n", "site: office\n",
		"server: " + srv.URL + "\n", "last contact: 20", "allow: 127.0.0.50/32 8443 (line 1)\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

// A DIR writable by others: nothing is opened in it (a planted link
// cannot redirect the log), and the refusal goes to stderr with its code.
func TestOpenRefusesLooseDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.Chmod(dir, 0o777)
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, nil, 0o600)
	os.Symlink(victim, filepath.Join(dir, LogFile))
	var stderr strings.Builder
	_, err := Open(Config{Dir: dir, Server: "http://127.0.0.1:1", UID: os.Getuid(), Stderr: &stderr})
	var oe *OwnershipError
	if !errors.As(err, &oe) || oe.Path != dir {
		t.Fatalf("Open: %v", err)
	}
	if seen, err := logcode.CheckEntries([]byte(stderr.String())); err != nil || seen[logcode.AgentInsecureFiles] != 1 {
		t.Fatalf("stderr %q: %v", stderr.String(), err)
	}
	if raw, _ := os.ReadFile(victim); len(raw) != 0 {
		t.Fatalf("the link's target was written: %s", raw)
	}
	// A trusted DIR with a planted link as agent.log: the log is not opened through it.
	os.Chmod(dir, 0o700)
	if _, err := Open(Config{Dir: dir, Server: "http://127.0.0.1:1", UID: os.Getuid()}); err == nil {
		t.Fatal("opened agent.log through a symbolic link")
	}
	if raw, _ := os.ReadFile(victim); len(raw) != 0 {
		t.Fatalf("the link's target was written: %s", raw)
	}
}
