// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"math/rand/v2"
	"time"

	"github.com/keychest/keychest-lined/finding"
)

// States of a target, as stored and as the line protocol and the CLI show
// them (finding kinds and severities are package finding's).
const (
	StateOK       = "ok"
	StateWarning  = "warning"
	StateCritical = "critical"
	StateUnknown  = "unknown"
	StatePending  = "pending"
	StateWildcard = "wildcard"
)

// Policy holds the thresholds and the schedule. Thresholds are relative to
// the certificate's lifetime L = notAfter - notBefore: a warning when less
// than min(L*WarnFraction, WarnMax) is left, critical under
// min(L*CritFraction, CritMax) and once expired.
type Policy struct {
	WarnFraction float64
	WarnMax      time.Duration
	CritFraction float64
	CritMax      time.Duration
	Interval     time.Duration   // between probes of a healthy target (jittered ±10%)
	OpenInterval time.Duration   // while a finding is open or the certificate is in its warning window
	Retries      []time.Duration // after the 1st, 2nd, 3rd and later failed probes
	Jitter       func() float64  // in [-1, 1); nil: none
}

// DefaultPolicy is the issue's: warning under min(L/4, 30 days), critical
// under min(L/10, 7 days), every 6 h, hourly while something is wrong,
// retries after 5 min, 15 min and 1 h.
func DefaultPolicy() Policy {
	return Policy{WarnFraction: 0.25, WarnMax: 30 * 24 * time.Hour, CritFraction: 0.1, CritMax: 7 * 24 * time.Hour,
		Interval: 6 * time.Hour, OpenInterval: time.Hour,
		Retries: []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour},
		Jitter:  func() float64 { return 2*rand.Float64() - 1 }}
}

// Window is how long before notAfter a certificate of lifetime L enters
// the warning and the critical window.
func (p Policy) Window(notBefore, notAfter time.Time) (warn, crit time.Duration) {
	life := notAfter.Sub(notBefore)
	return min(time.Duration(float64(life)*p.WarnFraction), p.WarnMax),
		min(time.Duration(float64(life)*p.CritFraction), p.CritMax)
}

// ExpirySeverity judges the time left of a certificate at now: "" when
// it is outside its warning window.
func (p Policy) ExpirySeverity(notBefore, notAfter, now time.Time) string {
	warn, crit := p.Window(notBefore, notAfter)
	left := notAfter.Sub(now)
	switch {
	case left <= 0:
		return finding.Expired
	case left < crit:
		return finding.Critical
	case left < warn:
		return finding.Warning
	}
	return ""
}
