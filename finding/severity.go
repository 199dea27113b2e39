// SPDX-License-Identifier: Apache-2.0

package finding

import (
	"strconv"
	"strings"
)

// Severities of a finding, as stored and shown, from mild to worst.
const (
	Warning  = "warning"
	Critical = "critical"
	Expired  = "expired"
)

// order is the one order of severities, mildest first: every comparison,
// in Go or in SQL, derives from it.
var order = []string{Warning, Critical, Expired}

// Rank orders severities: a higher rank is worse; 0 for "" or a severity
// this package does not know.
func Rank(severity string) int {
	for i, s := range order {
		if s == severity {
			return i + 1
		}
	}
	return 0
}

// Worse returns the worse of two severities ("" is the mildest of all).
func Worse(a, b string) string {
	if Rank(b) > Rank(a) {
		return b
	}
	return a
}

// RankSQL renders Rank as an SQL expression over expr (a column, or a
// placeholder such as "$3"): 1 for warning up to 3 for expired, 0 else.
func RankSQL(expr string) string {
	var b strings.Builder
	b.WriteString("(CASE " + expr + "::text")
	for i, s := range order {
		b.WriteString(" WHEN '" + s + "' THEN " + strconv.Itoa(i+1))
	}
	b.WriteString(" ELSE 0 END)")
	return b.String()
}
