// SPDX-License-Identifier: Apache-2.0

package finding

import (
	"strings"
	"testing"
	"time"
)

func TestRankOrdersSeverities(t *testing.T) {
	for _, c := range []struct {
		sev  string
		want int
	}{{"", 0}, {"bogus", 0}, {Warning, 1}, {Critical, 2}, {Expired, 3}} {
		if got := Rank(c.sev); got != c.want {
			t.Errorf("Rank(%q) = %d, want %d", c.sev, got, c.want)
		}
	}
	if Worse(Warning, Critical) != Critical || Worse(Expired, Warning) != Expired || Worse("", Warning) != Warning {
		t.Error("Worse does not follow Rank")
	}
}

func TestRankSQLFollowsRank(t *testing.T) {
	got := RankSQL("$3")
	want := "(CASE $3::text WHEN 'warning' THEN 1 WHEN 'critical' THEN 2 WHEN 'expired' THEN 3 ELSE 0 END)"
	if got != want {
		t.Fatalf("RankSQL = %s, want %s", got, want)
	}
	for _, s := range order {
		if !strings.Contains(got, "'"+s+"' THEN "+string(rune('0'+Rank(s)))) {
			t.Errorf("RankSQL does not rank %s as Rank does", s)
		}
	}
}

func TestMailed(t *testing.T) {
	for _, c := range []struct {
		how, sev, mailed, want string
		ok                     bool
	}{
		{Opened, Warning, "", Opened, true},
		{Raised, Critical, "", Opened, true},
		{Raised, Critical, Warning, Raised, true},
		{Raised, Critical, Critical, Raised, false},
		{Raised, Warning, Critical, Raised, false},
		{Resolved, Warning, "", Resolved, false},
		{Resolved, Warning, Critical, Resolved, true},
	} {
		got, ok := Mailed(c.how, c.sev, c.mailed)
		if got != c.want || ok != c.ok {
			t.Errorf("Mailed(%s, %s, %q) = %s, %v; want %s, %v", c.how, c.sev, c.mailed, got, ok, c.want, c.ok)
		}
	}
}

func TestEveryKindHasAdvice(t *testing.T) {
	for _, k := range Kinds() {
		if _, ok := advice[k]; !ok {
			t.Errorf("kind %s has no advice", k)
		}
	}
}

func TestDigestMoment(t *testing.T) {
	wed := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) // a Wednesday of ISO week 48
	if got := DigestMoment(wed, time.Monday, 7); !got.Equal(time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)) {
		t.Errorf("Monday 7:00 of the week: %s", got)
	}
	if got := DigestMoment(wed, time.Sunday, 23); !got.Equal(time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("Sunday ends the week: %s", got)
	}
	if DigestWeek(wed) != "2026-W48" {
		t.Errorf("week %s", DigestWeek(wed))
	}
}

func TestDetailLines(t *testing.T) {
	for _, c := range []struct {
		kind, detail string
		want         int
	}{
		{KindUnreach, "192.0.2.1: timeout; 192.0.2.2: refused", 2},
		{KindExpiry, "expires in 3 days", 1},
		{KindACMEInvalid, "refused; URGENT", 1},
		{KindACMEAccountFailing, "a; b; c", 1},
	} {
		if got := DetailLines(c.kind, c.detail); len(got) != c.want {
			t.Errorf("%s %q: %q, want %d lines", c.kind, c.detail, got, c.want)
		}
	}
}
