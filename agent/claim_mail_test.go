// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// mailServer is the fake agent API, counting the claim-email requests
// by address.
type mailServer struct {
	*fakeServer
	mu    sync.Mutex
	asked map[string]int
	live  bool // a link mailed before lives: the server queues no mail
	regs  int  // registrations: each is given an id of its own
}

func (m *mailServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == PathRegister {
		m.mu.Lock()
		m.regs++
		json.NewEncoder(w).Encode(Registered{ID: fmt.Sprintf("a-%d@agents.keychest.test", m.regs), APIKey: "kc-agent-key-0123456789"})
		m.mu.Unlock()
		return
	}
	if r.URL.Path != PathClaimEmail {
		m.fakeServer.ServeHTTP(w, r)
		return
	}
	var req ClaimEmailRequest
	body, _ := io.ReadAll(r.Body)
	json.Unmarshal(body, &req)
	m.mu.Lock()
	m.asked[req.Email]++
	queued := !m.live
	m.mu.Unlock()
	json.NewEncoder(w).Encode(ClaimEmailReply{Queued: queued})
}

func (m *mailServer) count(email string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.asked[email]
}

// cronOnce runs "once --email E" on dir as cron does: a new process.
func cronOnce(t *testing.T, srv *httptest.Server, dir, email string) {
	t.Helper()
	a, err := Open(Config{Dir: dir, Server: srv.URL, Version: "1.2.3", UID: os.Getuid(), Email: email,
		Heartbeat: 20 * time.Millisecond, RetryBase: 10 * time.Millisecond, For: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// ageClaimMail makes the last claim mail request as old as ago.
func ageClaimMail(t *testing.T, dir string, ago time.Duration) {
	t.Helper()
	st := loadClaimMail(dir)
	st.Last = st.Last.Add(-ago)
	if err := saveClaimMail(dir, st); err != nil {
		t.Fatal(err)
	}
}

// "once --email" from cron asks for the claim mail once per link
// lifetime, not on every run, and stops after MaxClaimMails links expired
// unanswered (saying so once); another address starts anew.
func TestClaimMailAskedOncePerLinkLifetime(t *testing.T) {
	m := &mailServer{fakeServer: &fakeServer{}, asked: map[string]int{}}
	srv := httptest.NewServer(m)
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	for range 3 {
		cronOnce(t, srv, dir, "owner@example.com")
	}
	if n := m.count("owner@example.com"); n != 1 {
		t.Fatalf("three runs asked %d times", n)
	}
	if fi, err := os.Stat(filepath.Join(dir, ClaimMailFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", ClaimMailFile, fi, err)
	}
	ageClaimMail(t, dir, ClaimMailEvery-time.Hour)
	cronOnce(t, srv, dir, "owner@example.com")
	if n := m.count("owner@example.com"); n != 1 {
		t.Fatalf("asked again while the link lives: %d", n)
	}
	for want := 2; want <= MaxClaimMails; want++ {
		ageClaimMail(t, dir, ClaimMailEvery)
		cronOnce(t, srv, dir, "owner@example.com")
		cronOnce(t, srv, dir, "owner@example.com")
		if n := m.count("owner@example.com"); n != want {
			t.Fatalf("after link %d expired: asked %d times", want-1, n)
		}
	}
	ageClaimMail(t, dir, 10*ClaimMailEvery)
	cronOnce(t, srv, dir, "owner@example.com")
	if n := m.count("owner@example.com"); n != MaxClaimMails {
		t.Fatalf("asked past the last link: %d", n)
	}
	if seen, _ := entries(t, dir); seen[logcode.AgentClaimMailHeld] != 1 || seen[logcode.AgentClaimMail] != MaxClaimMails {
		t.Errorf("log codes: %v", seen)
	}
	cronOnce(t, srv, dir, "other@example.com")
	if n := m.count("other@example.com"); n != 1 {
		t.Errorf("another address: asked %d times", n)
	}
}

// An ask the server answers with no mail queued (a link it mailed before
// lives) is not counted: the agent asks again on its next run, and
// counts the ask that queues one.
func TestClaimMailCountsOnlyQueuedMails(t *testing.T) {
	m := &mailServer{fakeServer: &fakeServer{}, asked: map[string]int{}, live: true}
	srv := httptest.NewServer(m)
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	cronOnce(t, srv, dir, "owner@example.com")
	cronOnce(t, srv, dir, "owner@example.com")
	if n, st := m.count("owner@example.com"), loadClaimMail(dir); n != 2 || st.Asks != 0 {
		t.Fatalf("while the server's link lives: asked %d times, %d counted", n, st.Asks)
	}
	m.mu.Lock()
	m.live = false
	m.mu.Unlock()
	cronOnce(t, srv, dir, "owner@example.com")
	cronOnce(t, srv, dir, "owner@example.com")
	if n, st := m.count("owner@example.com"), loadClaimMail(dir); n != 3 || st.Asks != 1 {
		t.Fatalf("once a mail is queued: asked %d times, %d counted", n, st.Asks)
	}
}

// An agent that registered anew (its identity.json removed) is another
// agent: it asks for its own claim mail at once, whatever the record of
// the one before says.
func TestClaimMailOfNewIdentityAskedAnew(t *testing.T) {
	m := &mailServer{fakeServer: &fakeServer{}, asked: map[string]int{}}
	srv := httptest.NewServer(m)
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	cronOnce(t, srv, dir, "owner@example.com")
	first := loadClaimMail(dir).Agent
	if err := os.Remove(filepath.Join(dir, IdentityFile)); err != nil {
		t.Fatal(err)
	}
	cronOnce(t, srv, dir, "owner@example.com")
	if n, st := m.count("owner@example.com"), loadClaimMail(dir); n != 2 || st.Agent == first || st.Asks != 1 {
		t.Fatalf("after a new identity: asked %d times, record %+v (first agent %q)", n, st, first)
	}
}
