// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"testing"

	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/names"
)

// Every refusal of package names is a 400 whose text is its reason,
// word for word.
func TestNamesRefusalsAre400(t *testing.T) {
	_, domainErr := names.ParseDomain("localhost")
	_, emailErr := names.ParseEmail("no-at-sign")
	_, keyErr := names.ParseAPIKey("key_with_underscore")
	_, d := parseDomain("localhost")
	_, e := parseEmail("no-at-sign")
	_, k := parseAPIKey("key_with_underscore")
	for _, c := range []struct {
		got  *lineproto.Error
		want error
	}{{d, domainErr}, {e, emailErr}, {k, keyErr}} {
		if c.want == nil || c.got == nil || c.got.Code != lineproto.CodeBadRequest || c.got.Text != c.want.Error() {
			t.Errorf("%v: want 400 %q", c.got, c.want)
		}
	}
	if _, err := parseAPIKey("My-Own-Key-0123456789"); err != nil {
		t.Errorf("a good key: %v", err)
	}
}
