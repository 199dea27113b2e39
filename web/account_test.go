// SPDX-License-Identifier: Apache-2.0

package web

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/store"
)

// The account page shows a finding's detail, text from outside, on one
// line and cut short.
func TestAccountPageKeepsOutsideTextOnOneLine(t *testing.T) {
	now := time.Now()
	hostile := "refused\n\nURGENT: re-verify at https://evil.test/\u2028" + strings.Repeat("x", 2000)
	m := accountModel(store.AccountView{Email: "owner@example.com", Domains: []store.DomainView{{
		CertStatus: store.CertStatus{Name: "victim.example", Port: 443, State: "warning"},
		Open:       []store.FindingRow{{Kind: finding.KindACMEInvalid, Severity: "warning", Detail: hostile, Opened: now}},
	}}}, now)
	got := m.Domains[0].Findings[0].Detail
	if strings.ContainsAny(got, "\n\r\u2028") || len([]rune(got)) > 501 || !strings.HasPrefix(got, "refused URGENT") {
		t.Fatalf("detail on the page: %q", got)
	}
}
