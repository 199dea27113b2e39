// SPDX-License-Identifier: Apache-2.0

//go:build faults

package faults

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// acked is the list of writes whose client received "status ok".
type acked struct {
	mu      sync.Mutex
	keys    []string
	claims  [][2]string // key, email
	domains [][2]string // key, domain
}

// writeLoad runs clients that issue keys, claim them and add domains until
// stop closes; it records every acknowledged write.
func writeLoad(addr string, clients int, stop <-chan struct{}, a *acked) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				status, key, err := do(addr, "command apikey", 5*time.Second)
				if err != nil || !strings.HasPrefix(status, "status ok") {
					continue
				}
				a.mu.Lock()
				a.keys = append(a.keys, key)
				a.mu.Unlock()
				email := fmt.Sprintf("c%d-%d-%s@crash.example", i, n, key[:8])
				if status, _, err := do(addr, "command claim apikey "+key+" email "+email, 5*time.Second); err == nil && strings.HasPrefix(status, "status ok") {
					a.mu.Lock()
					a.claims = append(a.claims, [2]string{key, email})
					a.mu.Unlock()
				}
				domain := fmt.Sprintf("h%d-%d.crash.example", i, n)
				if status, _, err := do(addr, "command add domain "+domain+" apikey "+key, 5*time.Second); err == nil && strings.HasPrefix(status, "status ok") {
					a.mu.Lock()
					a.domains = append(a.domains, [2]string{key, domain})
					a.mu.Unlock()
				}
			}
		}()
	}
	return &wg
}

// lost counts acknowledged writes missing from the database.
func (a *acked) lost(t *testing.T, db string) (keys, claims, domains int) {
	hashes := func(pairs [][2]string) (h [][]byte, second []string) {
		for _, p := range pairs {
			sum := sha256.Sum256([]byte(p[0]))
			h, second = append(h, sum[:]), append(second, p[1])
		}
		return h, second
	}
	var keyPairs [][2]string
	for _, k := range a.keys {
		keyPairs = append(keyPairs, [2]string{k, ""})
	}
	kh, _ := hashes(keyPairs)
	keys = count(t, db, `SELECT count(*) FROM unnest($1::bytea[]) AS w(h)
		WHERE NOT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = w.h)`, kh)
	ch, emails := hashes(a.claims)
	claims = count(t, db, `SELECT count(*) FROM unnest($1::bytea[], $2::text[]) AS w(h, email)
		WHERE NOT EXISTS (SELECT 1 FROM api_keys k JOIN accounts a ON a.id = k.account_id
			WHERE k.key_hash = w.h AND a.email = w.email)`, ch, emails)
	dh, names := hashes(a.domains)
	domains = count(t, db, `SELECT count(*) FROM unnest($1::bytea[], $2::text[]) AS w(h, name)
		WHERE NOT EXISTS (SELECT 1 FROM domains d JOIN api_keys k ON k.id = d.api_key_id
			WHERE k.key_hash = w.h AND d.name = w.name)`, dh, names)
	return
}

// kill -9 under write load: every acknowledged write is in the database,
// and a new server on the same database serves at once.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	db := newDB(t)
	s := start(t, db)
	var a acked
	stop := make(chan struct{})
	wg := writeLoad(s.addr, 16, stop, &a)
	time.Sleep(2 * time.Second) // let the load build up: this is the run's length, not a race
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	close(stop)
	wg.Wait()
	k, c, d := a.lost(t, db)
	t.Logf("acknowledged before kill -9: %d keys, %d claims, %d domains; lost: %d, %d, %d",
		len(a.keys), len(a.claims), len(a.domains), k, c, d)
	record(t, "crash", fmt.Sprintf("kill -9 under 16 writing clients: %d keys, %d claims, %d domains acknowledged; lost %d",
		len(a.keys), len(a.claims), len(a.domains), k+c+d))
	if len(a.domains) == 0 || k+c+d != 0 {
		t.Fatalf("lost %d keys, %d claims, %d domains", k, c, d)
	}
	again := start(t, db)
	if status, _, err := do(again.addr, "command add domain after.crash.example apikey "+a.keys[0], 5*time.Second); err != nil || !strings.HasPrefix(status, "status ok") {
		t.Fatalf("after restart: %q %v", status, err)
	}
}

// SIGTERM during load: in-flight commands answered, exit 0 in time,
// nothing acknowledged lost, new connections refused after.
func TestGracefulStop(t *testing.T) {
	db := newDB(t)
	s := start(t, db)
	var a acked
	stop := make(chan struct{})
	wg := writeLoad(s.addr, 16, stop, &a)
	time.Sleep(time.Second)
	began := time.Now()
	code := s.stop(t, syscall.SIGTERM, 15*time.Second)
	took := time.Since(began)
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	k, c, d := a.lost(t, db)
	record(t, "sigterm", fmt.Sprintf("SIGTERM under 16 writing clients: exit 0 after %s; %d writes acknowledged, %d lost",
		took.Round(time.Millisecond), len(a.keys)+len(a.claims)+len(a.domains), k+c+d))
	if k+c+d != 0 {
		t.Fatalf("lost %d keys, %d claims, %d domains", k, c, d)
	}
	if _, _, err := do(s.addr, "command ping", time.Second); err == nil {
		t.Fatal("a connection was answered after the server stopped")
	}
}

// The database goes down: every command gets a retryable 503 within the
// request timeout, /healthz says so, and service comes back on its own.
func TestDatabaseDown(t *testing.T) {
	db := newDB(t)
	s := start(t, db, "KEYCHEST_REQUEST_TIMEOUT=2s")
	status, key, _ := do(s.addr, "command apikey", 5*time.Second)
	if !strings.HasPrefix(status, "status ok") {
		t.Fatal(status)
	}
	if _, err := pg("stop"); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			pg("start")
		}
	}()
	worst := time.Duration(0)
	for _, line := range []string{"command apikey", "command add domain down.example apikey " + key,
		"command claim apikey " + key + " email down@example.com", "command status apikey " + key} {
		began := time.Now()
		status, _, err := do(s.addr, line, 10*time.Second)
		worst = max(worst, time.Since(began))
		if err != nil || !strings.HasPrefix(status, "status error 503") {
			t.Fatalf("%q with the database down: %q %v", line, status, err)
		}
	}
	if status, _, _ := do(s.addr, "command ping", time.Second); status != "status ok 200 pong" {
		t.Fatalf("ping with the database down: %q", status)
	}
	if resp, err := http.Get("http://" + s.httpAddr + "/healthz"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("healthz with the database down: %v %v", resp, err)
	}
	if _, err := pg("start"); err != nil {
		t.Fatal(err)
	}
	restarted = true
	began := time.Now()
	for {
		status, _, _ := do(s.addr, "command add domain back.example apikey "+key, 5*time.Second)
		if strings.HasPrefix(status, "status ok") {
			break
		}
		if time.Since(began) > 20*time.Second {
			t.Fatalf("still %q 20 s after PostgreSQL came back", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	record(t, "dbdown", fmt.Sprintf("PostgreSQL stopped: every command got 503 within %s (request timeout 2s); served again %s after it came back, no restart",
		worst.Round(time.Millisecond), time.Since(began).Round(time.Millisecond)))
}

// Two servers on one database: racing claims of one key, one wins; racing
// adds of one domain, one row.
func TestTwoServersOneDatabase(t *testing.T) {
	db := newDB(t)
	servers := []*server{start(t, db), start(t, db)}
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, _ := do(servers[i%2].addr, fmt.Sprintf("command claim apikey Shared-Key-0123456789 email u%d@two.example", i), 10*time.Second)
			code := strings.Fields(status + " x x x")[2]
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes["200"] != 1 || codes["409"] != 19 {
		t.Fatalf("claims: %v, want one 200 and 19 409", codes)
	}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			do(servers[i%2].addr, "command add domain same.two.example apikey Shared-Key-0123456789", 10*time.Second)
		}()
	}
	wg.Wait()
	if n := count(t, db, `SELECT count(*) FROM domains WHERE name = 'same.two.example'`); n != 1 {
		t.Fatalf("%d rows for one domain", n)
	}
	record(t, "twoservers", "two servers, one database: 20 racing claims of one key: 1 won, 19 got 409; 20 racing adds of one domain: 1 row")
}
