// SPDX-License-Identifier: Apache-2.0

// Package words words what people read, the same on every page, mail and
// line reply: counts ("1 domain", "2 domains"), times (Stamp, in UTC),
// days left before a moment (DaysLeft), and text from outside cut to a
// length and stripped of control characters (Clean, MaxShown).
package words

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
)

// Count words a count with its noun: "1 domain", "2 domains", "0 domains".
// A noun whose plural is not just an "s" more gives it as well:
// Count(n, "key with a problem", "keys with problems").
func Count(n int, singular string, plural ...string) string {
	if n == 1 {
		return "1 " + singular
	}
	if len(plural) > 0 {
		return fmt.Sprintf("%d %s", n, plural[0])
	}
	return fmt.Sprintf("%d %ss", n, singular)
}

// DaysLeft is the whole days from now until t, rounded down: negative
// once t has passed. "command cert", the account page, the digest and the
// operator's tables all count days with it.
func DaysLeft(t, now time.Time) int { return int(math.Floor(t.Sub(now).Hours() / 24)) }

// Stamp writes a time for people, in UTC to the minute.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// MaxShown is the most of one detail (a finding's, or a part of one) a
// mail or a page shows, in runes.
const MaxShown = 500

// Clean makes text from outside (a CA's error, a proxy's report) fit for
// one line of a mail or a page: invalid UTF-8, control characters
// (newlines and tabs among them), line and paragraph separators and
// bidirectional overrides each become a space, runs of spaces one, and
// the result is cut to at most limit runes, ending in "…" when cut.
func Clean(s string, limit int) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.ToValidUTF8(s, " ") {
		if unsafeRune(r) || unicode.IsSpace(r) {
			r = ' '
		}
		if r == ' ' && (space || n == 0) {
			continue
		}
		space = r == ' '
		if n == limit {
			return strings.TrimRight(b.String(), " ") + "…"
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimRight(b.String(), " ")
}

// unsafeRune says whether r could break a line or reorder what a reader
// sees: a control or format character, or a line or paragraph separator.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
}
