// SPDX-License-Identifier: Apache-2.0

package finding

import "time"

// How an alert item changed a finding.
const (
	Opened   = "opened"
	Raised   = "raised"
	Resolved = "resolved"
)

// DefaultAlertBatch is how long an account's alert mail gathers findings
// before it is sent, unless KEYCHEST_ALERT_BATCH says otherwise.
const DefaultAlertBatch = 5 * time.Minute

// AlertItem is one line of an alert mail: a finding that opened, rose to
// a worse severity, or was resolved.
type AlertItem struct {
	Target   string    `json:"target"` // name:port
	Kind     string    `json:"kind"`
	Change   string    `json:"change"` // opened, raised or resolved
	Severity string    `json:"severity"`
	Detail   string    `json:"detail"`
	Since    time.Time `json:"since"`
	At       time.Time `json:"at"`
}

// Change is a finding a verdict changed, and how (Opened, Raised or
// Resolved).
type Change struct{ Kind, How string }

// Changes lists what a verdict does to findings, in the order its alert
// items are queued: opened, then raised, then resolved.
func Changes(v Verdict) []Change {
	var out []Change
	for _, f := range v.Open {
		out = append(out, Change{f.Kind, Opened})
	}
	for _, f := range v.Change {
		out = append(out, Change{f.Kind, Raised})
	}
	for _, k := range v.Close {
		out = append(out, Change{k, Resolved})
	}
	return out
}

// Mailed is the rule that says whether a change of a finding is mailed,
// and as what: opened always; raised only above the severity last mailed
// (and as "opened" when it was never mailed); resolved only if it was
// ever mailed. lastMailed is the severity last mailed, "" if never.
func Mailed(how, severity, lastMailed string) (string, bool) {
	switch how {
	case Raised:
		if lastMailed == "" {
			return Opened, true
		}
		return Raised, Rank(severity) > Rank(lastMailed)
	case Resolved:
		return Resolved, lastMailed != ""
	}
	return how, true
}

// ResolvedLast orders resolved items after the others: 1 for a resolved
// item, 0 else.
func ResolvedLast(it AlertItem) int {
	if it.Change == Resolved {
		return 1
	}
	return 0
}
