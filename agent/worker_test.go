// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The agent asks for its next jobs while a job of an earlier take still
// runs, and that request carries the results of the jobs done: one slow
// relay (the service holds it) does not hold up the rest.
func TestNextTakeWhileAJobRuns(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := target.Addr().(*net.TCPAddr).Port
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	var mu sync.Mutex
	var takes []JobsRequest
	withResults := make(chan JobsRequest, 1)
	exp := time.Now().Add(time.Minute)
	jobs := func(from, to int) []Job { // jobs that allow.conf refuses at once
		var out []Job
		for i := from; i <= to; i++ {
			out = append(out, Job{ID: int64(i), Token: "t" + strconv.Itoa(i), Name: "127.0.0.2", Port: port, Expires: exp})
		}
		return out
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathRelay: // the slow job's relay: held until released
			<-release
			http.Error(w, "no", http.StatusForbidden)
		case PathJobs:
			var req JobsRequest
			json.NewDecoder(r.Body).Decode(&req)
			mu.Lock()
			takes = append(takes, req)
			n := len(takes)
			mu.Unlock()
			var ans JobsReply
			switch n {
			case 1: // one slow job (relayed) and 31 quick ones
				ans.Jobs = append([]Job{{ID: 1, Token: "t1", Name: "127.0.0.1", Port: port, Expires: exp}}, jobs(2, 32)...)
			case 2:
				ans.Jobs = jobs(33, 64)
			}
			if len(req.Results) > 0 && req.Max > 0 {
				select {
				case withResults <- req:
				default:
				}
			}
			json.NewEncoder(w).Encode(ans)
		}
	}))
	defer srv.Close()
	defer free() // before srv.Close, which waits for the held relay
	a, _ := newAgent(t, srv, "allow 127.0.0.1/32 "+strconv.Itoa(port)+"\n")
	a.client.Key = "kc-agent-key-0123456789"
	done := make(chan int, 1)
	go func() {
		n, err := a.Work(context.Background(), 0, time.Now().Add(time.Minute))
		if err != nil {
			t.Error(err)
		}
		done <- n
	}()
	select {
	case req := <-withResults: // the slow job cannot end before free()
		if len(req.Results) < refillAt {
			t.Fatalf("a take with %d results", len(req.Results))
		}
		for _, res := range req.Results {
			if res.ID == 1 || res.Outcome != OutcomeRefused {
				t.Fatalf("a result while the slow job runs: %+v", res)
			}
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no take with results while the slow job ran")
	}
	free()
	if n := <-done; n != 64 {
		t.Fatalf("jobs run: %d", n)
	}
	mu.Lock()
	defer mu.Unlock()
	reported := map[int64]int{}
	for _, tk := range takes {
		for _, res := range tk.Results {
			reported[res.ID]++
		}
	}
	last := takes[len(takes)-1]
	if len(reported) != 64 || last.Max != 0 || len(last.Results) == 0 {
		t.Fatalf("results reported for %d jobs; the last take: %+v", len(reported), last)
	}
	for id, n := range reported {
		if n != 1 {
			t.Fatalf("job %d reported %d times", id, n)
		}
	}
}
