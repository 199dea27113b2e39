// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// The operator's lists, the monitor's overview and a key's status read
// targets by the same rules: a target never probed shows as unknown, a
// target in warning or critical is a problem, and an account's targets are
// those its keys' domains name.
func TestListsReadTargetsByOneRule(t *testing.T) {
	w := newACMEWorld(t)
	ctx := context.Background()
	w.enterWarning("a.example", time.Now())
	w.exec(`INSERT INTO mon_targets (name, port, state) VALUES ('c.example', 443, 'ok')`) // nobody's, never probed
	certs := func(email string) string {
		t.Helper()
		rows, err := w.p.Certs(ctx, email)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rows {
			out = append(out, r.Name+" "+r.State)
		}
		return strings.Join(out, ", ")
	}
	if got := certs(""); got != "a.example warning, c.example unknown" {
		t.Errorf("every target: %q", got)
	}
	if got := certs("owner@example.net"); got != "a.example warning" {
		t.Errorf("the owner's targets: %q", got)
	}
	if got := certs("nobody@example.net"); got != "" {
		t.Errorf("an unknown account's targets: %q", got)
	}
	o, err := w.p.Overview(ctx, time.Now())
	if err != nil || len(o.ByState) != 2 || o.ByState["warning"] != 1 || o.ByState["unknown"] != 1 {
		t.Errorf("overview %v, %v", o.ByState, err)
	}
	if st, err := w.p.KeyStatus(ctx, w.key); err != nil || st.Problems != 1 {
		t.Errorf("key status %+v, %v", st, err)
	}
}
