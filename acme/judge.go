// SPDX-License-Identifier: Apache-2.0

package acme

import (
	"fmt"
	"time"

	"github.com/keychest/keychest-lined/finding"
)

// Thresholds of the ACME findings (documented in docs/amp.md).
const (
	// BadNonceStorm badNonce errors for one ACME account within
	// BadNonceWindow are a storm.
	BadNonceStorm  = 10
	BadNonceWindow = 10 * time.Minute
	// AccountFailures failures of one ACME account (problem documents
	// other than badNonce, authorizations gone invalid) within
	// AccountFailWindow, with no valid order since the first, make it
	// "failing".
	AccountFailures   = 5
	AccountFailWindow = 24 * time.Hour
	// AccountDomainsAge: the domains an ACME account ordered this
	// recently get its account-wide findings.
	AccountDomainsAge = 30 * 24 * time.Hour
	// MaxDetail is the longest detail of an ACME finding, in runes: it
	// carries a CA's or a proxy's words, kept to one line.
	MaxDetail = 300
)

// Change is what the judge decides for some names: open (or update) a
// finding on each, or close findings of some kinds. The names are the
// event's, or, with OnAccount, the domains Account ordered within
// AccountDomainsAge before At (store looks them up). Store applies it to
// the names the posting key's account holds, and to no other.
type Change struct {
	Names     []string
	OnAccount bool
	Account   Account
	At        time.Time
	Open      *finding.Finding // nil: close
	Close     []string         // the kinds to close
	Why       string           // why they close
}

// Why a change closes findings.
const (
	WhyValid   = "an order for it reached valid"
	WhyOrdered = "an order for it was placed"
)

// JudgeEvent decides what one event changes on the names it gives: a
// valid order closes every ACME finding; any other order closes "not
// renewing"; an authorization or challenge gone invalid opens
// acme_invalid; a rateLimited problem opens acme_rate_limited (on the
// account's domains when the event names none).
func JudgeEvent(f Facts) []Change {
	on := func(kind, detail string) Change {
		return Change{Names: f.Names, Account: f.Account, At: f.At, Open: &finding.Finding{Kind: kind, Severity: finding.Warning, Detail: detail}}
	}
	var out []Change
	switch {
	case f.IsOrder() && f.Status == "valid":
		return []Change{{Names: f.Names, Account: f.Account, At: f.At, Close: finding.ACMEKinds, Why: WhyValid}}
	case f.IsOrder():
		out = append(out, Change{Names: f.Names, Account: f.Account, At: f.At, Close: []string{finding.KindACMENotRenewing}, Why: WhyOrdered})
	case (f.Msg == "auth" || f.Msg == "chall") && f.Status == "invalid":
		return []Change{on(finding.KindACMEInvalid, f.invalidDetail())}
	}
	if f.ProblemIs("rateLimited") {
		c := on(finding.KindACMERateLimited, "rate limited by "+f.Server+": "+f.ProblemDetail)
		c.OnAccount = len(f.Names) == 0
		out = append(out, c)
	}
	return out
}

// invalidDetail says what went invalid, with the CA's detail.
func (f Facts) invalidDetail() string {
	what := "the authorization"
	if f.Msg == "chall" {
		what = "the " + f.ChallType + " challenge"
	}
	return fmt.Sprintf("%s went invalid at %s: %s", what, f.Server, f.Failure())
}

// ToCount picks, per ACME account, the last of a batch's events that
// count towards a storm of badNonce errors and the last that count as a
// failure: store counts each account's within the window before it, and
// asks Storm and Failing. Events that name no account count for none.
func ToCount(facts []Facts) (nonces, failures map[Account]Facts) {
	nonces, failures = map[Account]Facts{}, map[Account]Facts{}
	for _, f := range facts {
		switch {
		case f.Account.ID == "":
		case f.ProblemIs("badNonce"):
			nonces[f.Account] = f
		case f.Failed():
			failures[f.Account] = f
		}
	}
	return nonces, failures
}

// Storm decides, from the account's n badNonce errors within
// BadNonceWindow up to its last one, whether they are a storm: then
// acme_bad_nonce opens on the account's domains.
func Storm(last Facts, n int) []Change {
	if n < BadNonceStorm {
		return nil
	}
	a := last.Account
	return []Change{{OnAccount: true, Account: a, At: last.At, Open: &finding.Finding{Kind: finding.KindACMEBadNonce, Severity: finding.Warning,
		Detail: fmt.Sprintf("%d badNonce errors from %s within %s for ACME account %s: %s", n, a.Server, BadNonceWindow, a.ID, last.ProblemDetail)}}}
}

// Failing decides, from the account's n failures within
// AccountFailWindow (and since its last valid order) up to its last one,
// whether it is failing: then acme_account_failing opens on its domains.
func Failing(last Facts, n int) []Change {
	if n < AccountFailures {
		return nil
	}
	a := last.Account
	return []Change{{OnAccount: true, Account: a, At: last.At, Open: &finding.Finding{Kind: finding.KindACMEAccountFailing, Severity: finding.Warning,
		Detail: fmt.Sprintf("ACME account %s at %s (proxy %s): %d failures within %s and no valid order since; last: %s",
			a.ID, a.Server, a.Proxy, n, AccountFailWindow, last.Failure())}}}
}
