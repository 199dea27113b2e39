// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/logcode"
)

func TestFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{"KEYCHESTAGENT_DIR": "/tmp/x", "KEYCHESTAGENT_SERVER": "https://k.example",
		"KEYCHESTAGENT_FOR": "20s", "KEYCHESTAGENT_LOG": "-", "KEYCHESTAGENT_SITE": "office",
		"KEYCHESTAGENT_START_JITTER": "30s"}
	var errs strings.Builder
	cfg, err := parseFlags("once", []string{"--site", "lab"}, func(k string) string { return env[k] }, &errs)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != "/tmp/x" || cfg.Server != "https://k.example" || cfg.For != 20*time.Second || cfg.Log != "-" ||
		cfg.Site != "lab" || cfg.Heartbeat != time.Minute || cfg.StartJitter != 30*time.Second {
		t.Fatalf("%+v", cfg)
	}
	none := func(string) string { return "" }
	if cfg, _ := parseFlags("status", nil, none, &errs); cfg.Dir != "/etc/keychest-agent" || cfg.For != 50*time.Second ||
		cfg.StartJitter != 0 {
		t.Fatalf("defaults: %+v", cfg)
	}
	for _, args := range [][]string{{}, {"--server", "https://k", "--for", "0s"}, {"--server", "https://k", "extra"},
		{"--server", "https://k", "--heartbeat", "soon"}, {"--server", "https://k", "--start-jitter", "-1s"}} {
		if _, err := parseFlags("run", args, none, &errs); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// once from a cron-like loop: each run does one pass and exits 0; the
// second does not register again.
func TestOnceExitsZero(t *testing.T) {
	registers, beats := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case agent.PathRegister:
			registers++
			json.NewEncoder(w).Encode(agent.Registered{ID: "a@agents.test", APIKey: "kc-0123456789abcdef"})
		case agent.PathHeartbeat:
			beats++
			json.NewEncoder(w).Encode(agent.Beat{ID: "a@agents.test"})
		}
	}))
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "agent")
	t.Setenv("KEYCHESTAGENT_DIR", dir)
	t.Setenv("KEYCHESTAGENT_SERVER", srv.URL)
	var out, errs strings.Builder
	for range 3 {
		if code := run([]string{"once", "--for", "5s"}, &out, &errs); code != 0 {
			t.Fatalf("exit %d: %s", code, errs.String())
		}
	}
	if registers != 1 || beats != 3 {
		t.Fatalf("registers %d, beats %d", registers, beats)
	}
	if code := run([]string{"status"}, &out, &errs); code != 0 || !strings.Contains(out.String(), "id: a@agents.test\n") {
		t.Fatalf("status %d: %s %s", code, out.String(), errs.String())
	}
}

// allow.conf writable by others: the agent refuses to start, exit 1,
// with AGT0501 in its log.
func TestRefusesLooseAllowConf(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agent")
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, "allow.conf")
	os.WriteFile(path, []byte("allow 10.0.0.0/8 443\n"), 0o600)
	os.Chmod(path, 0o646)
	var out, errs strings.Builder
	if code := run([]string{"run", "-e", dir, "--server", "http://127.0.0.1:1"}, &out, &errs); code != 1 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
	if seen, err := logcode.CheckEntries(raw); err != nil || seen[logcode.AgentInsecureFiles] != 1 {
		t.Fatalf("log %v %v: %s", seen, err, raw)
	}
	if !strings.Contains(errs.String(), "writable by group or others") {
		t.Fatalf("stderr: %s", errs.String())
	}
}
