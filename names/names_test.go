// SPDX-License-Identifier: Apache-2.0

package names

import (
	"strings"
	"testing"
)

func TestParseDomain(t *testing.T) {
	tests := []struct {
		raw  string
		want Domain
	}{
		{"example.com", Domain{"example.com", 443, false}},
		{"keychest.net", Domain{"keychest.net", 443, false}},
		{"Example.COM.", Domain{"example.com", 443, false}},
		{" example.com ", Domain{"example.com", 443, false}},
		{"https://example.com/", Domain{"example.com", 443, false}},
		{"HTTPS://Example.com:8443", Domain{"example.com", 8443, false}},
		{"sub.domain.example.co.uk:1", Domain{"sub.domain.example.co.uk", 1, false}},
		{"example.com:65535", Domain{"example.com", 65535, false}},
		{"*.example.com", Domain{"*.example.com", 443, true}},
		{"*.Example.com.:444", Domain{"*.example.com", 444, true}},
		{"bücher.example", Domain{"xn--bcher-kva.example", 443, false}},
		{"BÜCHER.example", Domain{"xn--bcher-kva.example", 443, false}},
		{"xn--bcher-kva.example", Domain{"xn--bcher-kva.example", 443, false}},
		{"a-b.example", Domain{"a-b.example", 443, false}},
		{strings.Repeat("a", 63) + ".example", Domain{strings.Repeat("a", 63) + ".example", 443, false}},
	}
	for _, tt := range tests {
		got, err := ParseDomain(tt.raw)
		if err != nil || got != tt.want {
			t.Errorf("ParseDomain(%q) = %+v, %v; want %+v", tt.raw, got, err, tt.want)
		}
	}
}

func TestParseDomainRefuses(t *testing.T) {
	long := strings.Repeat("abcdefghi.", 25) + "example" // 257 characters
	tests := []struct{ raw, reason string }{
		{"", "empty"},
		{"https://", "empty"},
		{".", "empty"},
		{"localhost", "two labels"},
		{"com", "two labels"},
		{"*.com", "two labels"},
		{"example..com", "empty label"},
		{".example.com", "empty label"},
		{"-example.com", "start or end with '-'"},
		{"example-.com", "start or end with '-'"},
		{strings.Repeat("a", 64) + ".example", "longer than 63"},
		{long, "longer than 253"},
		{"http://example.com", "only https://"},
		{"ftp://example.com", "only https://"},
		{"example.com:0", "port"},
		{"example.com:65536", "port"},
		{"example.com:", "port"},
		{"example.com:https", "port"},
		{"example.com:+443", "port"},
		{"1.2.3.4", "IP addresses"},
		{"10.0.0.1:443", "IP addresses"},
		{"::1", "IP addresses"},
		{"[2001:db8::1]:443", "IP addresses"},
		{"example.com/login", "not a URL"},
		{"user@example.com", "not a URL"},
		{"exa_mple.com", "not allowed"},
		{"*.*.example.com", "not allowed"},
		{"example.123", "all digits"},
		{"ex'ample.com", "not allowed"},
		{"example.com;drop table domains", "not allowed"},
	}
	for _, tt := range tests {
		got, err := ParseDomain(tt.raw)
		if err == nil {
			t.Errorf("ParseDomain(%q) = %+v, want an error with %q", tt.raw, got, tt.reason)
			continue
		}
		if !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("ParseDomain(%q): %q, want %q", tt.raw, err, tt.reason)
		}
	}
}

func TestParseEmail(t *testing.T) {
	valid := map[string]string{
		"Me@Example.com":          "me@example.com",
		"a.b+tag@sub.example.org": "a.b+tag@sub.example.org",
		"x@bücher.example":        "x@xn--bcher-kva.example",
		"o'brien@example.ie.":     "o'brien@example.ie",
	}
	for raw, want := range valid {
		if got, err := ParseEmail(raw); err != nil || got != want {
			t.Errorf("ParseEmail(%q) = %q, %v; want %q", raw, got, err, want)
		}
	}
	invalid := map[string]string{
		"no-at-sign":                             "'@'",
		"@example.com":                           "nothing before",
		"a@":                                     "empty",
		"a@localhost":                            "two labels",
		"a@1.2.3.4":                              "IP addresses",
		".a@example.com":                         "misplaced '.'",
		"a..b@example.com":                       "misplaced '.'",
		`a"b@example.com`:                        "not allowed",
		"a,b@example.com":                        "not allowed",
		strings.Repeat("l", 65) + "@example.com": "local part longer",
		"a@" + strings.Repeat("d", 250) + ".example": "longer than 254",
	}
	for raw, reason := range invalid {
		_, err := ParseEmail(raw)
		if err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("ParseEmail(%q) = %v, want %q", raw, err, reason)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		k := NewAPIKey()
		if len(k) != 44 || strings.Count(k, "-") != 4 || strings.ToLower(k) != k || seen[k] {
			t.Fatalf("bad or repeated key %q", k)
		}
		seen[k] = true
		if _, err := ParseAPIKey(k); err != nil {
			t.Fatalf("generated key %q refused: %v", k, err)
		}
	}
	for _, k := range []string{"short", strings.Repeat("a", 65), "has space in it here", "ünïcödé-key-0123456", "key_with_underscore"} {
		if _, err := ParseAPIKey(k); err == nil {
			t.Errorf("ParseAPIKey(%q) = %v, want a refusal", k, err)
		}
	}
	ref, _ := ParseAPIKey("My-Own-Key-0123456789")
	if ref.Prefix != "My-Own-K" {
		t.Errorf("prefix %q", ref.Prefix)
	}
}
