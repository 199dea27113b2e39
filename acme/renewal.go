// SPDX-License-Identifier: Apache-2.0

package acme

import (
	"fmt"
	"time"

	"github.com/keychest/keychest-lined/finding"
)

// RenewalGrace is how long a certificate may sit in its warning window
// before "no order seen since" becomes a finding: certbot and its kin try
// twice a day.
const RenewalGrace = 48 * time.Hour

// RenewalCheckEvery is how often a server runs the renewal check. Windows
// are days long: a quarter hour is prompt enough.
const RenewalCheckEvery = 15 * time.Minute

// Unrenewed is a domain whose certificate is in its warning window (its
// expiry finding of Severity opened at WarnSince, RenewalGrace or more
// ago), whose name an account's proxies once saw an ACME order for (the
// last at LastOrder, via Proxy), and for which they saw none since.
type Unrenewed struct {
	Severity             string
	WarnSince, LastOrder time.Time
	Proxy                string
}

// NotRenewing is the finding an unrenewed domain gets: acme_not_renewing,
// as severe as its expiry finding.
func NotRenewing(u Unrenewed) finding.Finding {
	return finding.Finding{Kind: finding.KindACMENotRenewing, Severity: u.Severity,
		Detail: fmt.Sprintf("the certificate is in its warning window since %s and no ACME order for it was seen since (last order %s, via %s): the renewal is not even being attempted",
			u.WarnSince.UTC().Format(time.DateTime), u.LastOrder.UTC().Format(time.DateTime), u.Proxy)}
}

// WhyRenewed is why acme_not_renewing closes when its domain is no
// longer unrenewed.
const WhyRenewed = "the certificate left its warning window"
