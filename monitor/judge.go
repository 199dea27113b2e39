// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/finding"
)

// confirmed lists the kinds that open at once: they are read from the
// certificate itself, so a second look would see the same. Every other
// kind (a refused connection, an untrusted or mismatched certificate, a
// stale node) opens only when the next probe sees it again: one blip
// gives no finding.
var confirmed = map[string]bool{finding.KindExpiry: true, finding.KindWeak: true}

// fromCertificate lists the kinds judged from a served certificate: a probe
// that saw no certificate at all cannot close them.
var fromCertificate = map[string]bool{finding.KindExpiry: true, finding.KindUntrusted: true, finding.KindMismatch: true,
	finding.KindRevoked: true, finding.KindStale: true, finding.KindWeak: true}

// clearing is the suspect that stands for an open finding seen gone once.
func clearing(kind string) string { return "clear:" + kind }

// Judge compares a probe with what the target served before and returns
// what to write: new observations, findings opened, changed or closed, a
// renewal, the state and when to probe next. A target that has never
// served a certificate is unknown, whatever its findings: an endpoint that
// takes TCP but never finishes a handshake must not read ok while its
// failure waits for confirmation. It does no I/O.
func (p Policy) Judge(prev finding.Target, res Result, now time.Time) finding.Verdict {
	v := finding.Verdict{TargetID: prev.ID, CheckedAt: now}
	seen := p.problems(res, now)
	v.Observe, v.Gone, v.Certs = diffServed(prev.Served, res)
	v.Events = renewal(prev.Served, res)
	open := p.findings(&v, prev, seen, hasCertificate(res))
	v.State = stateOf(open)
	if !prev.CertSeen && !hasCertificate(res) {
		v.State = StateUnknown // never shown a certificate: nothing to call ok (nor to rank)
	}
	v.NextDue = p.nextDue(res, v, open, now)
	return v
}

// findings opens, changes and closes findings, and returns the kinds open
// afterwards with their severities.
func (p Policy) findings(v *finding.Verdict, prev finding.Target, seen map[string]finding.Finding, sawCert bool) map[string]string {
	open := map[string]string{}
	failing := false
	for _, kind := range sortedKinds(seen) {
		f := seen[kind]
		failing = failing || !confirmed[kind]
		if old, ok := prev.Open[kind]; ok {
			open[kind] = f.Severity
			if old.Severity != f.Severity || old.Detail != f.Detail {
				v.Change = append(v.Change, f)
			}
			continue
		}
		if confirmed[kind] || slices.Contains(prev.Suspects, kind) {
			v.Open = append(v.Open, f)
			open[kind] = f.Severity
		} else {
			v.Suspects = append(v.Suspects, kind)
		}
	}
	for kind, old := range prev.Open {
		if _, still := seen[kind]; still {
			continue
		}
		if fromCertificate[kind] && !sawCert {
			open[kind] = old.Severity // nothing seen to judge it by: it stays as it was
			continue
		}
		if !confirmed[kind] && !slices.Contains(prev.Suspects, clearing(kind)) {
			// A flapping host must not mail "resolved" and "problem" by
			// turns: a problem that opened on two probes closes on two.
			open[kind] = old.Severity
			v.Suspects = append(v.Suspects, clearing(kind))
			continue
		}
		v.Close = append(v.Close, kind)
	}
	slices.Sort(v.Close)
	slices.Sort(v.Suspects)
	if failing {
		v.Failures = prev.Failures + 1
	}
	return open
}

// nextDue: a retry after a failed probe, hourly while something is open or
// the certificate is in its warning window, else the interval with ±10%
// jitter; and never after the moment the soonest certificate enters its
// warning or critical window.
func (p Policy) nextDue(res Result, v finding.Verdict, open map[string]string, now time.Time) time.Time {
	var wait time.Duration
	switch {
	case v.Failures > 0 && len(p.Retries) > 0:
		wait = p.Retries[min(v.Failures, len(p.Retries))-1]
	case len(v.Suspects) > 0 && len(p.Retries) > 0:
		wait = p.Retries[0] // a problem seemingly gone: look again soon
	case len(open) > 0:
		wait = p.OpenInterval
	default:
		wait = p.Interval
		if p.Jitter != nil {
			wait += time.Duration(p.Jitter() * 0.1 * float64(p.Interval))
		}
	}
	if leaf := soonest(res); leaf != nil {
		warn, crit := p.Window(leaf.NotBefore, leaf.NotAfter)
		for _, edge := range []time.Time{leaf.NotAfter.Add(-warn), leaf.NotAfter.Add(-crit), leaf.NotAfter} {
			if d := edge.Sub(now); d > 0 && d < wait {
				wait = max(d, time.Minute)
			}
		}
		if p.ExpirySeverity(leaf.NotBefore, leaf.NotAfter, now) != "" {
			wait = min(wait, p.OpenInterval)
		}
	}
	return now.Add(wait)
}

// stateOf is the worst severity open: critical (expired included),
// warning, or ok.
func stateOf(open map[string]string) string {
	worst := 0
	for _, sev := range open {
		worst = max(worst, finding.Rank(sev))
	}
	switch {
	case worst >= finding.Rank(finding.Critical):
		return StateCritical
	case worst == finding.Rank(finding.Warning):
		return StateWarning
	}
	return StateOK
}

func sortedKinds(m map[string]finding.Finding) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// hasCertificate reports whether any address served a certificate.
func hasCertificate(res Result) bool {
	for _, a := range res.Addresses {
		if len(a.Chain) > 0 {
			return true
		}
	}
	return false
}

// diffServed lists the addresses whose certificate or error changed, the
// addresses gone from DNS, and the certificates the new rows refer to.
// When the lookup failed nothing is known of the addresses, and their rows
// stay as they are.
func diffServed(prev map[netip.Addr]finding.Served, res Result) ([]finding.Observation, []netip.Addr, []finding.CertInfo) {
	var obs []finding.Observation
	var certs []finding.CertInfo
	now := map[netip.Addr]bool{}
	for _, a := range res.Addresses {
		now[a.Address] = true
		o := observation(a)
		if old, ok := prev[a.Address]; ok && bytes.Equal(old.Fingerprint, o.Fingerprint) && old.ErrorClass == o.ErrorClass {
			continue
		}
		obs = append(obs, o)
		for _, c := range a.Chain {
			certs = append(certs, CertInfo(c))
		}
	}
	var gone []netip.Addr
	if len(res.Addresses) > 0 {
		for a := range prev {
			if !now[a] {
				gone = append(gone, a)
			}
		}
		slices.SortFunc(gone, func(a, b netip.Addr) int { return a.Compare(b) })
	}
	return obs, gone, certs
}

// observation is the history row of one address's result.
func observation(a AddressResult) finding.Observation {
	o := finding.Observation{Address: a.Address, TLSVersion: a.TLSVersion}
	if a.Class != ClassOK {
		o.ErrorClass, o.ErrorDetail = string(a.Class), a.Detail
	}
	for i, c := range a.Chain {
		fp := Fingerprint(c)
		if i == 0 {
			o.Fingerprint = fp[:]
		} else {
			o.Chain = append(o.Chain, fp[:])
		}
	}
	return o
}

// renewal records a renewal when the soonest-expiring certificate served
// before has been replaced everywhere by a later one.
func renewal(prev map[netip.Addr]finding.Served, res Result) []finding.Event {
	var old *finding.Served
	for _, s := range prev {
		if s.Fingerprint != nil && (old == nil || s.NotAfter.Before(old.NotAfter)) {
			s := s
			old = &s
		}
	}
	leaf := soonest(res)
	if old == nil || leaf == nil || !leaf.NotAfter.After(old.NotAfter) {
		return nil
	}
	for _, a := range certAddresses(res) {
		if fp := Fingerprint(a.Chain[0]); bytes.Equal(fp[:], old.Fingerprint) {
			return nil
		}
	}
	return []finding.Event{{Kind: "renewed", Detail: fmt.Sprintf("new certificate valid until %s (was until %s)",
		leaf.NotAfter.UTC().Format(time.RFC3339), old.NotAfter.UTC().Format(time.RFC3339))}}
}

// certAddresses lists the addresses that served a certificate.
func certAddresses(res Result) []AddressResult {
	var out []AddressResult
	for _, a := range res.Addresses {
		if len(a.Chain) > 0 {
			out = append(out, a)
		}
	}
	return out
}

// addrList joins addresses for a finding's detail.
func addrList(as []AddressResult) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.Address.String()
	}
	return strings.Join(s, ", ")
}
