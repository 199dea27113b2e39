// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/lineproto"
)

// KEYCHEST_MAX_DOMAINS_PER_KEY=0 means no limit, like every other limit.
func TestNoDomainLimit(t *testing.T) {
	e := newEnv(t, 0)
	key := e.do(t, "command apikey").Data
	for i := 0; i < 3; i++ {
		expect(t, e.do(t, fmt.Sprintf("command add domain d%d.example apikey %s", i, key)), 200, "added")
	}
}

// Caps that waiting does not lift answer a code that says not to retry;
// only time-window limits say "retry later" (429).
func TestCapsAreNotRetryable(t *testing.T) {
	e := newEnv(t, 1)
	cfg := testConfig(1)
	cfg.MaxUnconfirmedKeys = 1
	e.mux = NewMux(e.mux.store, cfg, zerolog.Nop())
	key := e.do(t, "command apikey").Data
	expect(t, e.do(t, "command add domain one.example apikey "+key), 200, "added")
	capped := []lineproto.Reply{e.do(t, "command add domain two.example apikey "+key)}
	expect(t, e.do(t, "command claim apikey "+key+" email cap@example.com"), 200, "claimed")
	capped = append(capped, e.do(t, "command claim apikey second-key-0123456789 email cap@example.com"))
	for _, r := range capped {
		if r.Code != lineproto.CodeForbidden || lineproto.Retryable(r.Code) {
			t.Errorf("%d %q: want 403, not retryable", r.Code, r.Text)
		}
	}
	expect(t, capped[0], 403, "the most one key may hold")
	expect(t, capped[1], 403, "confirm it from its mail before claiming more")
}
