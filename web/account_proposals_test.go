// SPDX-License-Identifier: Apache-2.0

package web

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// The account page lists the proposals with their text from the agent
// cleaned (one line, cut short) and HTML-escaped, gone ones marked.
func TestAccountPageShowsProposalsCleanedAndEscaped(t *testing.T) {
	now := time.Now()
	gone := now.Add(-time.Hour)
	v := store.AccountView{Email: "owner@example.com", ProposalsTotal: 3, Proposals: []store.Discovered{
		{Site: "office", Name: "ok.corp.example", Port: 443, Source: "axfr:corp.example", Addresses: 2, FirstSeen: now},
		{Site: "lab\n<b>x</b>", Name: "<script>alert(1)</script>\nevil", Port: 636, Source: "axfr:" + strings.Repeat("z", 400),
			Addresses: 1, FirstSeen: now, Gone: &gone},
	}}
	m := accountModel(v, now)
	if len(m.Proposals) != 2 || m.ProposalsTotal != 3 || !strings.Contains(m.ProposalsNote, "2 of 3") {
		t.Fatalf("model: %+v", m)
	}
	if p := m.Proposals[1]; strings.ContainsAny(p.Target+p.Site+p.Source, "\n\r") || len([]rune(p.Source)) > 256 || p.Gone == "" {
		t.Fatalf("hostile proposal: %+v", p)
	}
	var b strings.Builder
	if err := accountTemplate.Execute(&b, m); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{`data-proposal="ok.corp.example:443"`, "2 addresses", "axfr:corp.example",
		"&lt;script&gt;alert(1)&lt;/script&gt; evil:636", `data-gone="yes"`, "gone since", "Discovered by your agents (3)"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "<b>x</b>") {
		t.Errorf("page carries the agent's markup:\n%s", page)
	}
}

// A page without proposals has no proposals section.
func TestAccountPageWithoutProposals(t *testing.T) {
	var b strings.Builder
	if err := accountTemplate.Execute(&b, accountModel(store.AccountView{Email: "owner@example.com"}, time.Now())); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Discovered by your agents") {
		t.Error("empty proposals shown")
	}
}
