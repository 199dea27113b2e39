// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
)

// maxIdleRSS is the most an idle agent may hold in memory (the issue's
// target: 20 MB).
const maxIdleRSS = 20 << 20

// The built binary, running "run" with heartbeats, stays under 20 MB of
// resident memory.
func TestIdleRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "keychest-agent")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var beats atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case agent.PathRegister:
			json.NewEncoder(w).Encode(agent.Registered{ID: "a@agents.test", APIKey: "agt-0123456789abcdef"})
		case agent.PathHeartbeat:
			beats.Add(1)
			json.NewEncoder(w).Encode(agent.Beat{ID: "a@agents.test"})
		}
	}))
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "agent")
	cmd := exec.Command(bin, "run", "-e", dir, "--server", srv.URL, "--heartbeat", "50ms", "--log", "-")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for beats.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if beats.Load() < 20 {
		t.Fatalf("only %d heartbeats", beats.Load())
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var rss int
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			rss, _ = strconv.Atoi(f[1])
		}
	}
	t.Logf("idle RSS after %d heartbeats: %d KiB", beats.Load(), rss)
	if rss == 0 || rss*1024 > maxIdleRSS {
		t.Fatalf("idle RSS %d KiB, want at most %d KiB", rss, maxIdleRSS>>10)
	}
}
