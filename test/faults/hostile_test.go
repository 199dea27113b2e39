// SPDX-License-Identifier: Apache-2.0

//go:build faults

package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Nasty inputs, each with the status it must get; none may store anything.
func TestHostileInput(t *testing.T) {
	db := newDB(t)
	s := start(t, db)
	_, key, _ := do(s.addr, "command apikey", 5*time.Second)
	before := rows(t, db)
	long := strings.Repeat("a", 63)
	cases := []struct{ line, want string }{
		{"command pi\x00ng", "status error 400 control byte 0x00"},
		{"command ping \xff\xfe", "status error 400 line is not valid UTF-8"},
		{"command add domain " + strings.Repeat("x", 1<<20), "status error 413"},
		{"\r\r\r\r", "status error 400 control byte 0x0d"},
		{strings.Repeat(" ", 1000) + "command ping", "status ok 200 pong"},
		{"command ping command ping", "status error 400 duplicate name"},
		{"command add domain x.example'; DROP TABLE domains; -- apikey " + key, "status error 400"},
		{"command add domain x.example';DROP apikey " + key, "status error 400 domain has characters not allowed"},
		{"command claim apikey " + key + " email a'--@x.example", "status ok 200 claimed"}, // a valid address: stored as text
		{"command claim apikey " + key + " email " + strings.Repeat("e", 250) + "@x.example", "status error 400 email longer than 254"},
		{"command add domain " + strings.Repeat(long+".", 4) + "example apikey " + key, "status error 400 domain longer than 253"},
		{"command add domain " + long + "a.example apikey " + key, "status error 400 domain label longer than 63"},
		{"command add domain pаypal.example apikey " + key, "status ok 200 domain xn--pypal-4ve.example:443 added"}, // Cyrillic a: stored as punycode
		{"command add domain a..example apikey " + key, "status error 400 domain has an empty label"},
		{"command add domain -lead.example apikey " + key, "status error 400 domain label may not start or end with '-'"},
		{"command add domain localhost apikey " + key, "status error 400 domain needs at least two labels"},
		{"command add domain 10.0.0.1 apikey " + key, "status error 400 IP addresses are not accepted"},
		{"command add domain [::1]:443 apikey " + key, "status error 400 IP addresses are not accepted"},
		{"command add domain 192.168.1.1 apikey " + key, "status error 400 IP addresses are not accepted"},
		{"command add domain ok.example apikey short", "status error 400 apikey must be 16 to 64"},
		{"command add domain ok.example apikey " + strings.Repeat("k", 65), "status error 400 apikey must be 16 to 64"},
		{"command add domain ok.example apikey has_under_score_0123", "status error 400 apikey may only hold"},
		{"command add domain ok.example apikey " + strings.ToUpper(key), "status error 401 unknown apikey"},
		{`command add domain ok.example apikey "` + key + `"`, "status error 400 apikey may only hold"},
	}
	for _, c := range cases {
		status, _, err := do(s.addr, c.line, 10*time.Second)
		if err != nil || !strings.HasPrefix(status, c.want) {
			t.Errorf("%.60q: got %q %v, want %q", c.line, status, err, c.want)
		}
	}
	after := rows(t, db)
	// Two of the inputs are valid and stored: the quoted email and the IDN homograph.
	if after.accounts != before.accounts+1 || after.domains != before.domains+1 {
		t.Fatalf("rows before %+v, after %+v", before, after)
	}
	if status, _, _ := do(s.addr, "command ping", time.Second); status != "status ok 200 pong" {
		t.Fatal("server not serving after the hostile inputs")
	}
	if code := s.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 { // flushes the log
		t.Fatalf("exit code %d", code)
	}
	checkLogIsJSON(t, s.log)
	record(t, "hostile", fmt.Sprintf("%d hostile inputs over TCP: each got its documented status; nothing stored but the two valid ones; every log line is one JSON object", len(cases)))
}

type rowCounts struct{ accounts, keys, domains int }

func rows(t *testing.T, db string) rowCounts {
	return rowCounts{
		accounts: count(t, db, `SELECT count(*) FROM accounts`),
		keys:     count(t, db, `SELECT count(*) FROM api_keys`),
		domains:  count(t, db, `SELECT count(*) FROM domains`),
	}
}

// checkLogIsJSON: values with quotes, newlines or control bytes cannot
// forge a log line: every line is one JSON object.
func checkLogIsJSON(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, line := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("log line is not JSON: %v\n%.300q", err, line)
		}
	}
	if len(lines) < 10 {
		t.Fatalf("only %d log lines", len(lines))
	}
}
