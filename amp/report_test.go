// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/acme"
)

// fakeLined answers the line protocol's apikey and claim commands.
func fakeLined(t *testing.T) (addr string, commands func() []string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var seen []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			mu.Lock()
			seen = append(seen, strings.TrimSpace(line))
			mu.Unlock()
			if strings.HasPrefix(line, "command apikey") {
				io.WriteString(c, "data 0123abcd-0123abcd-0123abcd-0123abcd-0123abcd\nstatus ok 200 new api key\n")
			} else {
				io.WriteString(c, "status ok 200 claimed\n")
			}
			c.Close()
		}
	}()
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestReporterDeliversEveryEventOnceThroughFailures(t *testing.T) {
	lined, commands := fakeLined(t)
	var mu sync.Mutex
	got := map[int64]int{}
	failures := 3
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != EventsPath || r.Header.Get("Authorization") != "Bearer 0123abcd-0123abcd-0123abcd-0123abcd-0123abcd" {
			http.Error(w, "bad request", 400)
			return
		}
		if failures > 0 { // keychest-lined's database down: nothing stored
			failures--
			http.Error(w, "unavailable", 503)
			return
		}
		body, _ := io.ReadAll(r.Body)
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var e acme.Envelope
			json.Unmarshal([]byte(l), &e)
			got[e.ID]++
		}
	}))
	defer api.Close()
	dir := t.TempDir()
	st, _ := LoadState(dir)
	q, _ := OpenQueue(filepath.Join(dir, "queue"), 1000, nil)
	j, _ := OpenJournal(JournalConfig{StateDir: dir, Proxy: st.Proxy, Queue: q})
	rep := &Reporter{Queue: q, State: st, Lined: lined, API: api.URL, Email: "ops@example.org", Log: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx, time.Second); close(done) }()
	for range 50 {
		j.Write(Event{Msg: "new-nonce", Params: acme.Params{}})
	}
	deadline := time.Now().Add(20 * time.Second)
	for q.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 50 {
		t.Fatalf("%d of 50 events arrived (queue %d)", len(got), q.Len())
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("event %d arrived %d times", id, n)
		}
	}
	key, claimed := st.Key()
	cmds := commands()
	if key == "" || claimed != "ops@example.org" || len(cmds) != 2 || cmds[1] != "command claim apikey "+key+" email ops@example.org" {
		t.Errorf("key %q claimed %q commands %q", key, claimed, cmds)
	}
	if fi, err := os.Stat(filepath.Join(dir, "amp.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("amp.json: %v %v", fi.Mode(), err)
	}
}

// keychest-lined answers 413 past its limits: the reporter sends the batch
// again in halves, and drops only an event that is refused alone.
func TestReporterSplitsBatchesRefusedAsTooLarge(t *testing.T) {
	lined, _ := fakeLined(t)
	var mu sync.Mutex
	got := map[int64]int{}
	largest := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		if len(lines) > 7 || strings.Contains(string(body), `"huge"`) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		largest = max(largest, len(lines))
		for _, l := range lines {
			var e acme.Envelope
			json.Unmarshal([]byte(l), &e)
			got[e.ID]++
		}
	}))
	defer api.Close()
	dir := t.TempDir()
	st, _ := LoadState(dir)
	q, _ := OpenQueue(filepath.Join(dir, "queue"), 1000, nil)
	j, _ := OpenJournal(JournalConfig{StateDir: dir, Proxy: st.Proxy, Queue: q})
	for i := range 40 {
		params := acme.Params{}
		if i == 20 {
			params.Agent = "huge"
		}
		j.Write(Event{Msg: "new-nonce", Params: params})
	}
	rep := &Reporter{Queue: q, State: st, Lined: lined, API: api.URL, Email: "ops@example.org", Log: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx, time.Second); close(done) }()
	for deadline := time.Now().Add(20 * time.Second); q.Len() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 39 || q.Len() != 0 || largest > 7 {
		t.Fatalf("%d of 39 events arrived, %d wait, largest batch %d", len(got), q.Len(), largest)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("event %d arrived %d times", id, n)
		}
	}
}

// A batch refused as bad input (400) is split like one refused as too
// large, and the one bad line, refused alone, is dropped: every other
// event arrives, and the queue empties.
func TestReporterDropsALineRefusedAsBadInput(t *testing.T) {
	lined, _ := fakeLined(t)
	var mu sync.Mutex
	got := map[int64]int{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"bad"`) {
			http.Error(w, "line 1: bad input", http.StatusBadRequest)
			return
		}
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var e acme.Envelope
			json.Unmarshal([]byte(l), &e)
			got[e.ID]++
		}
	}))
	defer api.Close()
	dir := t.TempDir()
	st, _ := LoadState(dir)
	q, _ := OpenQueue(filepath.Join(dir, "queue"), 1000, nil)
	j, _ := OpenJournal(JournalConfig{StateDir: dir, Proxy: st.Proxy, Queue: q})
	for i := range 30 {
		params := acme.Params{}
		if i == 11 {
			params.Agent = "bad"
		}
		j.Write(Event{Msg: "new-nonce", Params: params})
	}
	rep := &Reporter{Queue: q, State: st, Lined: lined, API: api.URL, Email: "ops@example.org", Log: zerolog.Nop()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx, time.Second); close(done) }()
	for deadline := time.Now().Add(20 * time.Second); q.Len() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if q.Len() != 0 || len(got) != 29 {
		t.Fatalf("queue %d left, %d events arrived, want 0 and 29", q.Len(), len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("event %d arrived %d times", id, n)
		}
	}
}
