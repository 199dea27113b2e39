// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/lineproto"
)

// "cert" of a target behind a site whose agent has an open agent_silent
// finding ends its line with agent_silent=N, after site=S; the line is
// unchanged without one.
func TestCertCountsSilentAgents(t *testing.T) {
	w := newRelayWorld(t, 60*24*time.Hour)
	ctx := context.Background()
	port := strconv.Itoa(w.target.Port())
	if r := w.line(t, "command add domain ldap.corp.example:"+port+" apikey owner-key-0123456789 site office"); r.Code != lineproto.CodeOK {
		t.Fatalf("add: %+v", r)
	}
	cert := func() string {
		return w.line(t, "command cert domain ldap.corp.example:"+port+" apikey owner-key-0123456789").Data
	}
	if got := cert(); !strings.HasSuffix(got, " site=office") {
		t.Fatalf("before: %s", got)
	}
	if _, err := w.st.LeaseAgents(ctx, "test", time.Now(), time.Now(), time.Hour, 0); err != nil { // makes the agent's row
		t.Fatal(err)
	}
	w.db.Exec(ctx, `UPDATE agents SET last_seen_at = now() - interval '1 hour'`)
	if _, err := w.db.Exec(ctx, `INSERT INTO mon_findings (target_id, kind, severity, detail, opened_at, raised_at)
		SELECT id, 'agent_silent', 'warning', 'silent', now(), now() FROM mon_targets WHERE agent IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	if got := cert(); !strings.HasSuffix(got, " class=agent_unavailable site=office agent_silent=1") {
		t.Fatalf("silent agent: %s", got)
	}
}
