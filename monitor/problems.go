// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/finding"
)

// problems lists what this probe saw wrong, by finding kind. Details are
// stable while the problem stays the same (no "days left" in them), so an
// unchanged problem rewrites nothing.
func (p Policy) problems(res Result, now time.Time) map[string]finding.Finding {
	out := map[string]finding.Finding{}
	add := func(kind, sev, detail string) { out[kind] = finding.Finding{Kind: kind, Severity: sev, Detail: detail} }
	if f, ok := unreachable(res); ok {
		add(finding.KindUnreach, f.Severity, f.Detail)
	}
	served := certAddresses(res)
	if len(served) == 0 {
		return out
	}
	if leaf := soonest(res); leaf != nil {
		if sev := p.ExpirySeverity(leaf.NotBefore, leaf.NotAfter, now); sev != "" {
			add(finding.KindExpiry, sev, fmt.Sprintf("expires %s (%s lifetime), served by %s",
				leaf.NotAfter.UTC().Format(time.RFC3339), days(leaf.NotAfter.Sub(leaf.NotBefore)),
				addrList(servingLeaf(served, leaf))))
		}
	}
	for kind, classes := range map[string][]Class{finding.KindUntrusted: {ClassUntrusted, ClassNotYetValid},
		finding.KindMismatch: {ClassMismatch}, finding.KindRevoked: {ClassRevoked}} {
		if hit := withProblem(served, classes...); len(hit) > 0 {
			add(kind, finding.Critical, perAddress(hit))
		}
	}
	if weak := weakLeaves(served); weak != "" {
		add(finding.KindWeak, finding.Warning, weak)
	}
	if stale := staleEndpoints(served); stale != "" {
		add(finding.KindStale, finding.Warning, stale)
	}
	return out
}

// unreachable is a critical finding when no address served a certificate
// (or the name does not resolve), a warning when only some failed.
func unreachable(res Result) (finding.Finding, bool) {
	if len(res.Addresses) == 0 {
		return finding.Finding{Severity: finding.Critical, Detail: fmt.Sprintf("%s: %s", res.Class, res.Detail)}, true
	}
	var failed []AddressResult
	for _, a := range res.Addresses {
		if a.Class.IsConnection() {
			failed = append(failed, a)
		}
	}
	if len(failed) == 0 {
		return finding.Finding{}, false
	}
	sev := finding.Warning
	if len(failed) == len(res.Addresses) {
		sev = finding.Critical
	}
	return finding.Finding{Severity: sev, Detail: perAddress(failed)}, true
}

// perAddress words each address's class and detail, in address order.
func perAddress(as []AddressResult) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = fmt.Sprintf("%s %s (%s)", a.Address, a.Class, a.Detail)
	}
	return strings.Join(parts, "; ")
}

// withProblem lists the addresses whose certificate has one of classes.
func withProblem(as []AddressResult, classes ...Class) []AddressResult {
	var out []AddressResult
	for _, a := range as {
		for _, c := range classes {
			if slices.Contains(a.Problems, c) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// soonest is the served leaf that expires first.
func soonest(res Result) *x509.Certificate {
	var leaf *x509.Certificate
	for _, a := range certAddresses(res) {
		if leaf == nil || a.Chain[0].NotAfter.Before(leaf.NotAfter) {
			leaf = a.Chain[0]
		}
	}
	return leaf
}

// servingLeaf lists the addresses that serve leaf.
func servingLeaf(as []AddressResult, leaf *x509.Certificate) []AddressResult {
	var out []AddressResult
	for _, a := range as {
		if a.Chain[0].Equal(leaf) {
			out = append(out, a)
		}
	}
	return out
}

// weakLeaves describes the weak leaves served, or "".
func weakLeaves(as []AddressResult) string {
	var parts []string
	for _, a := range as {
		if why := weakness(a.Chain[0]); why != "" {
			parts = append(parts, a.Address.String()+" "+why)
		}
	}
	return strings.Join(parts, "; ")
}

// staleEndpoints names the addresses serving a certificate issued before
// the newest one another address of the name serves, or "".
func staleEndpoints(as []AddressResult) string {
	newest := as[0].Chain[0]
	for _, a := range as[1:] {
		if a.Chain[0].NotBefore.After(newest.NotBefore) {
			newest = a.Chain[0]
		}
	}
	var parts []string
	for _, a := range as {
		leaf := a.Chain[0]
		if leaf.NotBefore.Before(newest.NotBefore) && leaf.NotAfter.Before(newest.NotAfter) && !leaf.Equal(newest) {
			parts = append(parts, fmt.Sprintf("%s still serves the certificate issued %s (expires %s)",
				a.Address, leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + fmt.Sprintf("; newest issued %s: reload those servers",
		newest.NotBefore.UTC().Format(time.RFC3339))
}

// days words a duration in whole days ("90-day").
func days(d time.Duration) string {
	return fmt.Sprintf("%d-day", int((d+12*time.Hour)/(24*time.Hour)))
}
