// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// dnsName returns a host name of n characters with labels of at most 63,
// ending in ".com", after "*." when wildcard is set (counted in n).
func dnsName(n int, wildcard bool) string {
	prefix := ""
	if wildcard {
		prefix = "*."
	}
	s := "com"
	for len(prefix)+len(s) < n {
		need := n - len(prefix) - len(s) - 1 // characters left for the next label
		l := min(63, need)
		if need-l == 1 { // a lone character would leave an empty label
			l--
		}
		s = strings.Repeat("a", l) + "." + s
	}
	return prefix + s
}

// One length rule, store.MaxDomainName, for the whole name with its "*.".
func TestDomainLengthRule(t *testing.T) {
	for _, n := range []int{252, 253, 254, 255} {
		for _, wildcard := range []bool{false, true} {
			raw := dnsName(n, wildcard)
			if len(raw) != n {
				t.Fatalf("dnsName(%d) has %d characters", n, len(raw))
			}
			d, err := parseDomain(raw)
			switch {
			case n <= store.MaxDomainName && (err != nil || d.Name != raw):
				t.Errorf("%d characters (wildcard %v): %+v, %v", n, wildcard, d, err)
			case n > store.MaxDomainName && (err == nil || err.Code != 400 || !strings.Contains(err.Text, "longer than 253")):
				t.Errorf("%d characters (wildcard %v): %+v, %v; want 400 longer than 253", n, wildcard, d, err)
			}
		}
	}
}

// The case end to end: "*." and a 253-character name is a 400
// with its reason, and the longest wildcard is stored.
func TestLongWildcardIs400(t *testing.T) {
	e := newEnv(t, 1000)
	key := e.do(t, "command apikey").Data
	long := "*." + strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 57) + ".com"
	expect(t, e.do(t, "command add domain "+long+" apikey "+key), 400, "longer than 253 characters with its \"*.\"")
	longest := dnsName(store.MaxDomainName, true)
	expect(t, e.do(t, "command add domain "+longest+" apikey "+key), 200, "added")
}

// A value the schema refused is the client's fault: 400 with the reason.
func TestRefusedIs400(t *testing.T) {
	m := NewMux(nil, testConfig(10), zerolog.Nop())
	err := m.wireError(&lineproto.Request{Verb: "add"}, fmt.Errorf("%w: domain longer than 253 characters", store.ErrRefused))
	if err.Code != 400 || err.Text != "refused: domain longer than 253 characters" {
		t.Fatalf("%d %q", err.Code, err.Text)
	}
}
