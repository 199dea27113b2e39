// SPDX-License-Identifier: Apache-2.0

package words

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int
		got  string
		want string
	}{
		{0, Count(0, "domain"), "0 domains"},
		{1, Count(1, "domain"), "1 domain"},
		{2, Count(2, "domain"), "2 domains"},
		{1, Count(1, "with a problem", "with problems"), "1 with a problem"},
		{3, Count(3, "with a problem", "with problems"), "3 with problems"},
	} {
		if c.got != c.want {
			t.Errorf("%d: %q, want %q", c.n, c.got, c.want)
		}
	}
}

func TestCleanKeepsTextOnOneLineAndCutsIt(t *testing.T) {
	for _, c := range []struct {
		in    string
		limit int
		want  string
	}{
		{"connection refused", 100, "connection refused"},
		{"refused\r\n\r\nURGENT: re-verify at https://x.test\n", 100, "refused URGENT: re-verify at https://x.test"},
		{"a\tb\x00c\x1b[31md\u2028e\u2029f\u202eg\x7fh", 100, "a b c [31md e f g h"},
		{"bad \xff utf-8", 100, "bad utf-8"},
		{"héllo wörld", 5, "héllo…"},
		{"abc def", 4, "abc…"},
		{"  \n ", 10, ""},
	} {
		if got := Clean(c.in, c.limit); got != c.want {
			t.Errorf("Clean(%q, %d) = %q, want %q", c.in, c.limit, got, c.want)
		}
	}
}
