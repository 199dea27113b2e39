package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/internal/words"
)

// Finding kinds raised from keychest-amp's events. They live in
// mon_findings beside the monitor's, on the target of the domain (port
// 443), but each belongs to the account whose key posted the events
// (mon_findings.account_id), and goes through the alert path to that
// account only. An account's events touch only the names it holds.
const (
	KindACMEInvalid        = "acme_invalid"         // an authorization or challenge went invalid
	KindACMERateLimited    = "acme_rate_limited"    // the CA answered rateLimited
	KindACMEBadNonce       = "acme_bad_nonce"       // a storm of badNonce errors
	KindACMEAccountFailing = "acme_account_failing" // an ACME account fails again and again
	KindACMENotRenewing    = "acme_not_renewing"    // in the warning window and no order seen since
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
	// RenewalGrace is how long a certificate may sit in its warning
	// window before "no order seen since" becomes a finding: certbot and
	// its kin try twice a day.
	RenewalGrace = 48 * time.Hour
	// accountDomainsAge: the domains an ACME account ordered this
	// recently get its account-wide findings.
	accountDomainsAge = 30 * 24 * time.Hour
	// DefaultAlertBatch is KEYCHEST_ALERT_BATCH's default.
	DefaultAlertBatch = 5 * time.Minute
)

// acmeKinds are the kinds a valid order for a domain closes.
var acmeKinds = []string{KindACMEInvalid, KindACMERateLimited, KindACMEBadNonce, KindACMEAccountFailing, KindACMENotRenewing}

// ACMEChange is a finding that ACME events or the renewal check opened,
// changed or closed.
type ACMEChange struct {
	Target   string // name:port
	Kind     string
	Change   string // opened, changed or closed
	Severity string
	Detail   string
}

// alertBatch is AlertBatch or its default.
func (p *Postgres) alertBatch() time.Duration {
	if p.alertBatchSet > 0 {
		return p.alertBatchSet
	}
	return DefaultAlertBatch
}

// acmeFindings applies, in the transaction that stored them, what new
// events say: the activity per domain, findings opened for failures and
// closed by a valid order, then the account-wide counts.
func acmeFindings(ctx context.Context, tx pgx.Tx, key acmeKey, events []ACMEEvent, now time.Time, batch time.Duration) ([]ACMEChange, error) {
	fw := &findingWriter{tx: tx, now: now, batch: batch, account: key.account}
	nonces, failures := map[acmeAccount]acmeFacts{}, map[acmeAccount]acmeFacts{}
	for _, e := range events {
		f := readFacts(e, now)
		f.account.keyID = key.id
		if err := recordActivity(ctx, fw, f); err != nil {
			return nil, err
		}
		if err := fw.eventFindings(ctx, f); err != nil {
			return nil, err
		}
		switch {
		case f.account.id == "":
		case f.problemIs("badNonce"):
			nonces[f.account] = f
		case f.failed():
			failures[f.account] = f
		}
	}
	for acct, f := range nonces {
		if err := fw.storm(ctx, acct, f); err != nil {
			return nil, err
		}
	}
	for acct, f := range failures {
		if err := fw.failing(ctx, acct, f); err != nil {
			return nil, err
		}
	}
	return fw.changes, nil
}

// eventFindings opens and closes the per-domain findings of one event.
func (fw *findingWriter) eventFindings(ctx context.Context, f acmeFacts) error {
	names := f.names
	switch {
	case f.isOrder() && f.status == "valid":
		return fw.closeAll(ctx, names, acmeKinds, "an order for it reached valid")
	case f.isOrder():
		if err := fw.closeAll(ctx, names, []string{KindACMENotRenewing}, "an order for it was placed"); err != nil {
			return err
		}
	case (f.msg == "auth" || f.msg == "chall") && f.status == "invalid":
		return fw.openAll(ctx, names, KindACMEInvalid, "warning", f.invalidDetail())
	}
	if f.problemIs("rateLimited") {
		if len(names) == 0 {
			var err error
			if names, err = accountDomains(ctx, fw.tx, f.account, f.at); err != nil {
				return err
			}
		}
		return fw.openAll(ctx, names, KindACMERateLimited, "warning", "rate limited by "+f.server+": "+f.problemDetail)
	}
	return nil
}

// storm opens acme_bad_nonce on the account's domains when its badNonce
// errors within the window reach the threshold.
func (fw *findingWriter) storm(ctx context.Context, acct acmeAccount, last acmeFacts) error {
	var n int
	err := fw.tx.QueryRow(ctx, `SELECT count(*) FROM acme_events WHERE api_key_id = $6 AND proxy = $1 AND params->>'server' = $2
		AND params->>'account' = $3 AND params->'problem'->>'type' LIKE '%:badNonce'
		AND coalesce(event_time, received_at) BETWEEN $4 AND $5`,
		acct.proxy, acct.server, acct.id, last.at.Add(-BadNonceWindow), last.at, acct.keyID).Scan(&n)
	if err != nil || n < BadNonceStorm {
		return err
	}
	names, err := accountDomains(ctx, fw.tx, acct, last.at)
	if err != nil {
		return err
	}
	return fw.openAll(ctx, names, KindACMEBadNonce, "warning", fmt.Sprintf("%d badNonce errors from %s within %s for ACME account %s: %s",
		n, acct.server, BadNonceWindow, acct.id, last.problemDetail))
}

// failingSQL counts an account's failures in the window since its last
// valid order.
const failingSQL = `
SELECT count(*) FROM acme_events e
WHERE e.api_key_id = $6 AND e.proxy = $1 AND e.params->>'server' = $2 AND e.params->>'account' = $3
  AND coalesce(e.event_time, e.received_at) BETWEEN greatest($4, (
      SELECT max(coalesce(v.event_time, v.received_at)) FROM acme_events v
      WHERE v.api_key_id = $6 AND v.proxy = $1 AND v.params->>'server' = $2 AND v.params->>'account' = $3
        AND v.msg IN ('order', 'final', 'new-order') AND v.params->>'status' = 'valid')) AND $5
  AND (e.params->'problem'->>'type' NOT LIKE '%:badNonce' OR (e.msg = 'auth' AND e.params->>'status' = 'invalid'))`

// failing opens acme_account_failing on the account's domains when its
// failures reach the threshold.
func (fw *findingWriter) failing(ctx context.Context, acct acmeAccount, last acmeFacts) error {
	var n int
	err := fw.tx.QueryRow(ctx, failingSQL, acct.proxy, acct.server, acct.id, last.at.Add(-AccountFailWindow), last.at, acct.keyID).Scan(&n)
	if err != nil || n < AccountFailures {
		return err
	}
	names, err := accountDomains(ctx, fw.tx, acct, last.at)
	if err != nil {
		return err
	}
	return fw.openAll(ctx, names, KindACMEAccountFailing, "warning", fmt.Sprintf("ACME account %s at %s (proxy %s): %d failures within %s and no valid order since; last: %s",
		acct.id, acct.server, acct.proxy, n, AccountFailWindow, last.failure()))
}

// accountDomains lists the domains an ACME account ordered recently, as
// the posting key's events told.
func accountDomains(ctx context.Context, tx pgx.Tx, acct acmeAccount, at time.Time) ([]string, error) {
	if acct.id == "" {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT name FROM acme_domains WHERE api_key_id = $4 AND proxy = $1 AND account = $2 AND updated_at >= $3
		ORDER BY name`, acct.proxy, acct.key(), at.Add(-accountDomainsAge), acct.keyID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// recordActivitySQL keeps the latest ACME activity of a domain at a
// proxy, as one key's events tell it.
const recordActivitySQL = `
INSERT INTO acme_domains AS d (name, proxy, api_key_id, account, order_path, order_status, order_at, valid_at, error, error_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN $8::timestamptz END, CASE WHEN $7 AND $6 = 'valid' THEN $8::timestamptz END,
        $9, CASE WHEN $9 <> '' THEN $8::timestamptz END, $8)
ON CONFLICT (api_key_id, proxy, name) DO UPDATE SET
    account = CASE WHEN EXCLUDED.account <> '' THEN EXCLUDED.account ELSE d.account END,
    order_path = CASE WHEN $7 AND EXCLUDED.order_path <> '' THEN EXCLUDED.order_path ELSE d.order_path END,
    order_status = CASE WHEN $7 THEN EXCLUDED.order_status ELSE d.order_status END,
    order_at = greatest(d.order_at, EXCLUDED.order_at),
    valid_at = greatest(d.valid_at, EXCLUDED.valid_at),
    error = CASE WHEN EXCLUDED.error <> '' THEN EXCLUDED.error ELSE d.error END,
    error_at = CASE WHEN EXCLUDED.error <> '' THEN EXCLUDED.error_at ELSE d.error_at END,
    updated_at = greatest(d.updated_at, EXCLUDED.updated_at)`

// recordActivity updates acme_domains for every name an event gives
// that the account holds.
func recordActivity(ctx context.Context, fw *findingWriter, f acmeFacts) error {
	status := f.status
	if f.isOrder() && status == "" && f.problemType != "" {
		status = "error"
	}
	names, err := fw.held(ctx, f.names)
	if err != nil {
		return err
	}
	for _, name := range names {
		if _, err := fw.tx.Exec(ctx, recordActivitySQL, name, f.account.proxy, f.account.keyID, f.account.key(), f.order, status,
			f.isOrder(), f.at, words.Clean(f.failure(), MaxACMEDetail)); err != nil {
			return err
		}
	}
	return nil
}

// acmeAccount is an ACME account as one proxy sees it, through the
// events of one key.
type acmeAccount struct {
	proxy, server, id string
	keyID             int64
}

// key is how acme_domains names the account.
func (a acmeAccount) key() string {
	if a.id == "" {
		return ""
	}
	return a.server + a.id
}

// acmeFacts is what one event says, read from its params.
type acmeFacts struct {
	msg, status, order, server string
	at                         time.Time
	account                    acmeAccount
	names                      []string
	problemType, problemDetail string   // the response's problem document
	subTypes                   []string // the types of its subproblems
	errType, errDetail         string   // an authorization's or challenge's error
	challType                  string
}

// readFacts reads an event's params as keychest-amp writes them.
func readFacts(e ACMEEvent, now time.Time) acmeFacts {
	type problem struct {
		Type, Detail string
		Subproblems  []struct {
			Type       string
			Identifier struct{ Type, Value string }
		}
	}
	type ident struct{ Type, Value string }
	var p struct {
		Status, Order, Server, Account, Type string
		Domains, Identifiers                 []ident
		Identifier                           *ident
		Problem, Error                       *problem
	}
	json.Unmarshal(e.Params, &p)
	f := acmeFacts{msg: e.Msg, status: p.Status, order: p.Order, server: p.Server, at: e.Time, challType: p.Type,
		account: acmeAccount{proxy: e.Proxy, server: p.Server, id: p.Account}}
	if f.at.IsZero() {
		f.at = now
	}
	ids := append(p.Domains, p.Identifiers...)
	if p.Identifier != nil {
		ids = append(ids, *p.Identifier)
	}
	if p.Problem != nil {
		f.problemType, f.problemDetail = p.Problem.Type, p.Problem.Detail
		for _, s := range p.Problem.Subproblems {
			ids = append(ids, ident(s.Identifier))
			f.subTypes = append(f.subTypes, s.Type)
		}
	}
	if p.Error != nil {
		f.errType, f.errDetail = p.Error.Type, p.Error.Detail
	}
	seen := map[string]bool{}
	for _, id := range ids {
		name := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(id.Value), "*."), ".")
		if id.Type == "dns" && hostName(name) && !seen[name] {
			seen[name] = true
			f.names = append(f.names, name)
		}
	}
	return f
}

func (f acmeFacts) isOrder() bool {
	return f.msg == "new-order" || f.msg == "order" || f.msg == "final"
}

// problemIs says whether the response was an ACME problem of this type,
// or had a subproblem of it.
func (f acmeFacts) problemIs(short string) bool {
	for _, t := range append([]string{f.problemType}, f.subTypes...) {
		if strings.HasSuffix(t, ":"+short) {
			return true
		}
	}
	return false
}

// failed says whether the event counts as a failure of its account.
func (f acmeFacts) failed() bool {
	return f.problemType != "" || f.msg == "auth" && f.status == "invalid"
}

// failure is the error an event reports, "" when none.
func (f acmeFacts) failure() string {
	switch {
	case f.problemType != "":
		return shortProblem(f.problemType) + ": " + f.problemDetail
	case f.errType != "" || f.errDetail != "":
		return shortProblem(f.errType) + ": " + f.errDetail
	case f.status == "invalid":
		return f.msg + " invalid"
	}
	return ""
}

// invalidDetail says what went invalid, with the CA's detail.
func (f acmeFacts) invalidDetail() string {
	what := "the authorization"
	if f.msg == "chall" {
		what = "the " + f.challType + " challenge"
	}
	return fmt.Sprintf("%s went invalid at %s: %s", what, f.server, f.failure())
}

// shortProblem drops the ACME URN prefix of a problem type.
func shortProblem(t string) string {
	return strings.TrimPrefix(t, "urn:ietf:params:acme:error:")
}

// hostName says whether s looks like a DNS name worth a target: letters,
// digits, hyphens and underscores in dot-separated labels.
func hostName(s string) bool {
	if s == "" || len(s) > 253 || strings.HasPrefix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == ""
}
