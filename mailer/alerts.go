// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/store"
)

// alert words a batch of findings, worst first, resolved ones last.
func (c Composer) alert(items []finding.AlertItem) (subject, body string) {
	slices.SortStableFunc(items, func(a, b finding.AlertItem) int {
		return cmp.Or(cmp.Compare(finding.ResolvedLast(a), finding.ResolvedLast(b)),
			-cmp.Compare(finding.Rank(a.Severity), finding.Rank(b.Severity)), strings.Compare(a.Target, b.Target))
	})
	var open, resolved []finding.AlertItem
	for _, it := range items {
		if it.Change == finding.Resolved {
			resolved = append(resolved, it)
		} else {
			open = append(open, it)
		}
	}
	var b strings.Builder
	switch {
	case len(open) > 0:
		subject = fmt.Sprintf("KeyChest: %s with your certificates", words.Count(len(open), "problem"))
		if len(resolved) > 0 {
			subject += fmt.Sprintf(", %s resolved", words.Count(len(resolved), "other"))
		}
		fmt.Fprintf(&b, "KeyChest found %s with the certificates it watches for you.\n\n", words.Count(len(open), "problem"))
	default:
		subject = fmt.Sprintf("KeyChest: %s resolved", words.Count(len(resolved), "problem"))
		fmt.Fprintf(&b, "Good news: %s KeyChest told you about %s.\n\n", words.Count(len(resolved), "problem"),
			map[bool]string{true: "is gone", false: "are gone"}[len(resolved) == 1])
	}
	for _, it := range open {
		fmt.Fprintf(&b, "%s  %s  %s%s, since %s\n", strings.ToUpper(it.Severity), it.Target, it.Kind,
			map[bool]string{true: " (worse than before)", false: ""}[it.Change == finding.Raised], words.Stamp(it.Since))
		for _, part := range finding.DetailLines(it.Kind, it.Detail) {
			fmt.Fprintf(&b, "    %s\n", words.Clean(part, words.MaxShown))
		}
		fmt.Fprintf(&b, "    What to do: %s\n\n", finding.TargetAdvice(it.Target, it.Kind, it.Severity))
	}
	if len(resolved) > 0 {
		b.WriteString("Resolved:\n")
		for _, it := range resolved {
			fmt.Fprintf(&b, "    %s  %s (it was %s since %s)\n", it.Target, it.Kind, it.Severity, words.Stamp(it.Since))
		}
		b.WriteString("\n")
	}
	return subject, b.String()
}

// digest words an account's week: every domain, soonest expiry first,
// then what changed.
func (c Composer) digest(d store.Digest, now time.Time) (subject, body string) {
	problems := d.LDAPCertProblems // of all, not only those listed
	for _, s := range d.Domains {
		if len(s.Findings) > 0 {
			problems++
		}
	}
	subject = fmt.Sprintf("KeyChest weekly: %s watched, %s", words.Count(len(d.Domains)+d.LDAPCertsTotal, "certificate"),
		map[bool]string{true: "all well", false: words.Count(problems, "with a problem", "with problems")}[problems == 0])
	var b strings.Builder
	fmt.Fprintf(&b, "Your certificates, soonest expiry first:\n\n")
	fmt.Fprintf(&b, "%-6s %-9s %-34s %-11s %-24s %s\n", "DAYS", "STATE", "DOMAIN", "EXPIRES", "ISSUER", "FINDINGS")
	for _, s := range d.Domains {
		days, expires := "-", "-"
		if s.Expires != nil {
			days, expires = fmt.Sprint(words.DaysLeft(*s.Expires, now)), s.Expires.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(&b, "%-6s %-9s %-34s %-11s %-24s %s\n", days, s.State, fmt.Sprintf("%s:%d", s.Name, s.Port), expires,
			dashed(s.IssuerCN), dashed(strings.Join(s.Findings, ",")))
	}
	fmt.Fprintf(&b, "\nWhat changed since %s:\n", words.Stamp(d.Since))
	if len(d.Changes) == 0 {
		b.WriteString("    nothing\n")
	}
	for _, ch := range d.Changes {
		fmt.Fprintf(&b, "    %s  %s  %s", words.Stamp(ch.At), ch.Target, ch.What)
		if ch.Detail != "" {
			fmt.Fprintf(&b, ": %s", words.Clean(ch.Detail, words.MaxShown))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	digestAgents(&b, d, now)
	if d.NewProposals > 0 {
		fmt.Fprintf(&b, "%s by your agents: see `command discovered` or your account page.\n\n",
			words.Count(d.NewProposals, "new endpoint discovered", "new endpoints discovered"))
	}
	return subject, b.String()
}

// footer is the account page link and the unsubscribe link.
func (c Composer) footer(pageToken, stop, unsubscribe string) string {
	return fmt.Sprintf("All your certificates, with their history:\n  %s\n\n%s:\n  %s\n",
		c.link("account", pageToken), stop, unsubscribe)
}

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
