// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"strings"
	"testing"
)

func TestDataLine(t *testing.T) {
	many := make([]string, 200)
	for i := range many {
		many[i] = "name-of-twenty-bytes"
	}
	for _, c := range []struct {
		items  []string
		sep    string
		want   string
		budget int
	}{
		{nil, " ", "-", 900},
		{[]string{"a:443"}, " ", "a:443", 900},
		{[]string{"a:443", "b:443"}, " ", "a:443 b:443", 900},
		{[]string{"id=1", "id=2"}, " ; ", "id=1 ; id=2", 900},
		{[]string{"aaaa", "bbbb", "cccc"}, " ", "aaaa (+2 more)", 20},
	} {
		if got := dataLine(c.items, c.sep, c.budget); got != c.want {
			t.Errorf("%q %q %d: %q, want %q", c.items, c.sep, c.budget, got, c.want)
		}
	}
	got := dataLine(many, " ; ", 900)
	if len(got) > 900 || !strings.HasSuffix(got, " more)") {
		t.Errorf("%d bytes: %q", len(got), got)
	}
}
