// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		verb string
		args []Arg
	}{
		// The seed's three calls, in the seed's order and in the other.
		{"command apikey", "apikey", nil},
		{"command claim apikey K email E", "claim", []Arg{{"apikey", "K"}, {"email", "E"}}},
		{"command add domain keychest.net apikey 28a7e10-1fea", "add",
			[]Arg{{"domain", "keychest.net"}, {"apikey", "28a7e10-1fea"}}},
		{"command add apikey 28a7e10-1fea domain keychest.net", "add",
			[]Arg{{"apikey", "28a7e10-1fea"}, {"domain", "keychest.net"}}},
		{"domain d.example command add apikey K", "add", []Arg{{"domain", "d.example"}, {"apikey", "K"}}},
		// Names and the verb are case-insensitive; values are kept as sent.
		{"COMMAND Add DOMAIN Example.COM ApiKey K", "add", []Arg{{"domain", "Example.COM"}, {"apikey", "K"}}},
		// Any run of spaces and tabs separates.
		{"  command\t ping  ", "ping", nil},
		// UTF-8 values pass through (IDN domains).
		{"command add domain bücher.example apikey K", "add", []Arg{{"domain", "bücher.example"}, {"apikey", "K"}}},
		// Blank lines parse to nothing.
		{"", "", nil},
		{" \t ", "", nil},
	}
	for _, tt := range tests {
		req, err := ParseLine([]byte(tt.line))
		if err != nil {
			t.Errorf("ParseLine(%q): %v", tt.line, err)
			continue
		}
		if req.Verb != tt.verb || !reflect.DeepEqual(nonNil(req.Args), nonNil(tt.args)) {
			t.Errorf("ParseLine(%q) = %q %v, want %q %v", tt.line, req.Verb, req.Args, tt.verb, tt.args)
		}
	}
}

func nonNil(a []Arg) []Arg {
	if a == nil {
		return []Arg{}
	}
	return a
}

// Inputs that must be refused, each with a word of the reason.
var mustFail = []struct {
	line   string
	reason string
}{
	{"command", "has no value"},
	{"command add domain", "has no value"},
	{"command add domain a.example domain b.example apikey K", "duplicate"},
	{"command ping command ping", "duplicate"},
	{"command ping COMMAND ping", "duplicate"},
	{"domain a.example apikey K", "missing \"command\""},
	{"command pi\x00ng", "control byte 0x00"},
	{"command ping\r", "control byte 0x0d"},
	{"command \x1b[31mping", "control byte 0x1b"},
	{"command ping\x7f", "control byte 0x7f"},
	{"command \xff\xfe", "not valid UTF-8"},
	{"command add do.main x apikey K", "not a valid name"},
	{"command add 'domain' x apikey K", "not a valid name"},
	{"command add " + strings.Repeat("n", 33) + " x", "not a valid name"},
	{"command p.ing", "not a command"},
}

func TestParseLineMustFail(t *testing.T) {
	for _, tt := range mustFail {
		_, err := ParseLine([]byte(tt.line))
		if err == nil {
			t.Errorf("ParseLine(%q) succeeded, want an error", tt.line)
			continue
		}
		if err.Code != CodeBadRequest || !strings.Contains(err.Text, tt.reason) {
			t.Errorf("ParseLine(%q) = %d %q, want 400 with %q", tt.line, err.Code, err.Text, tt.reason)
		}
	}
}

func TestRequestGet(t *testing.T) {
	req, _ := ParseLine([]byte("command add apikey K domain D"))
	if v, ok := req.Get("domain"); !ok || v != "D" {
		t.Errorf("Get(domain) = %q, %v", v, ok)
	}
	if _, ok := req.Get("email"); ok {
		t.Error("Get(email) found a value that was not sent")
	}
}

// FuzzParseLine checks that any input either parses into a request whose
// names are valid and unique, or fails with a 400; nothing panics.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte("command add domain keychest.net apikey 28a7e10-1fea"))
	for _, tt := range mustFail {
		f.Add([]byte(tt.line))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := ParseLine(line)
		if err != nil {
			if err.Code != CodeBadRequest {
				t.Fatalf("code %d for %q", err.Code, line)
			}
			return
		}
		seen := map[string]bool{}
		for _, a := range req.Args {
			if seen[a.Name] || a.Name == "command" || a.Name != strings.ToLower(a.Name) {
				t.Fatalf("bad arg %q in %q", a.Name, line)
			}
			seen[a.Name] = true
		}
	})
}
