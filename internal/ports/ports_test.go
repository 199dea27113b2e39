// SPDX-License-Identifier: Apache-2.0

package ports

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in, canonical string
		allowed       []int
		refused       []int
	}{
		{Default, Default, []int{443, 465, 636, 853, 993, 995, 5061, 6443, 8443, 9443},
			[]int{0, 1, 22, 80, 442, 444, 3306, 5432, 6379, 8080, 65535}},
		{Everything, "1-65535", []int{1, 22, 6379, 65535}, []int{0, 65536, -1}},
		{"443", "443", []int{443}, []int{442, 444}},
		{" 8443 , 443 ", "443,8443", []int{443, 8443}, []int{444}},
		{"443 8443\t9443", "443,8443,9443", []int{9443}, []int{80}},
		{"8000-8999,443", "443,8000-8999", []int{443, 8000, 8500, 8999}, []int{7999, 9000}},
		{"10-20,15-30,31", "10-31", []int{10, 31}, []int{9, 32}}, // overlapping and touching ranges merge
		{"443,443,443-443", "443", []int{443}, []int{442}},       // duplicates collapse
		{"0443", "443", []int{443}, nil},                         // leading zeros are still decimal
		{"65535", "65535", []int{65535}, []int{65534}},
		{"1,,2", "1-2", []int{1, 2}, []int{3}}, // empty fields between commas are skipped
	} {
		s, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := s.String(); got != c.canonical {
			t.Errorf("Parse(%q).String() = %q, want %q", c.in, got, c.canonical)
		}
		for _, p := range c.allowed {
			if !s.Allows(p) {
				t.Errorf("Parse(%q) refuses %d", c.in, p)
			}
		}
		for _, p := range c.refused {
			if s.Allows(p) {
				t.Errorf("Parse(%q) allows %d", c.in, p)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"":            "empty",
		" , ":         "empty",
		"0":           "is not a port",
		"65536":       "is not a port",
		"99999999999": "is not a port",
		"-1":          "is not a port",
		"+443":        "is not a port",
		"443,abc":     "is not a port",
		"0x1bb":       "is not a port",
		"443.0":       "is not a port",
		"1-":          "is not a port",
		"-443":        "is not a port",
		"1-2-3":       "is not a port",
		"0-65535":     "is not a port",
		"1-65536":     "is not a port",
		"20-10":       "runs backwards",
		"443;8443":    "is not a port",
		"１２３":         "is not a port", // full-width digits
	} {
		if s, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, %v; want an error with %q", in, s, err, want)
		}
	}
}

func TestZeroAndDecode(t *testing.T) {
	var zero Set
	if !zero.IsZero() || zero.Allows(443) {
		t.Fatal("the zero Set must allow nothing")
	}
	if DefaultSet().IsZero() || !DefaultSet().Allows(443) {
		t.Fatal("DefaultSet must allow 443")
	}
	var s Set
	if err := s.Decode("bad"); err == nil || !s.IsZero() {
		t.Fatalf("Decode(bad) = %v, %v", err, s)
	}
	if err := s.Decode("1-65535"); err != nil || !s.Allows(6379) {
		t.Fatalf("Decode(1-65535) = %v, %v", err, s)
	}
}
