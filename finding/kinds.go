// SPDX-License-Identifier: Apache-2.0

package finding

import (
	"slices"
	"strings"
)

// Kinds of finding, as stored (mon_findings.kind) and shown by the line
// protocol, the CLI, the pages and the mails.
const (
	// The monitor's, judged from a probe (monitor.Policy.Judge).
	KindExpiry    = "expiry"         // the certificate is in its warning window, or expired
	KindUntrusted = "untrusted"      // the chain does not verify
	KindMismatch  = "name_mismatch"  // the certificate does not cover the name
	KindRevoked   = "revoked"        // the CA revoked the certificate
	KindUnreach   = "unreachable"    // no address served a certificate
	KindStale     = "stale_endpoint" // an address serves an older certificate than the others
	KindWeak      = "weak"           // a weak key or signature

	// The ACME judge's (package acme), from keychest-amp's events. Each
	// belongs to the account whose key posted the events.
	KindACMEInvalid        = "acme_invalid"         // an authorization or challenge went invalid
	KindACMERateLimited    = "acme_rate_limited"    // the CA answered rateLimited
	KindACMEBadNonce       = "acme_bad_nonce"       // a storm of badNonce errors
	KindACMEAccountFailing = "acme_account_failing" // an ACME account fails again and again
	KindACMENotRenewing    = "acme_not_renewing"    // in the warning window and no order seen since

	// An agent's (keychest-agent), on the agent's own row: it has not
	// called in for KEYCHEST_AGENT_SILENT_AFTER.
	KindAgentSilent = "agent_silent"
)

// MonitorKinds are the kinds the monitor's probes raise (and close).
var MonitorKinds = []string{KindExpiry, KindUntrusted, KindMismatch, KindRevoked, KindUnreach, KindStale, KindWeak}

// ACMEKinds are the kinds raised from ACME events: a valid order for a
// domain closes them all.
var ACMEKinds = []string{KindACMEInvalid, KindACMERateLimited, KindACMEBadNonce, KindACMEAccountFailing, KindACMENotRenewing}

// Kinds are all the kinds. The schema's CHECK mon_findings_kind_check
// holds the same list (store's TestFindingKindsRule proves they agree):
// a new kind needs a migration that widens it.
func Kinds() []string {
	return append(append(append([]string(nil), MonitorKinds...), ACMEKinds...), AgentKinds...)
}

// AgentKinds are the kinds about a keychest-agent itself: its silence
// opens one, and its next call closes it.
var AgentKinds = []string{KindAgentSilent}

// LDAPLabel starts the label of a certificate read from an LDAP store
// ("LDAP " and its entry's DN), as alert mails show it.
const LDAPLabel = "LDAP "

// TargetAdvice is Advice for a finding of target: an expiry finding of a
// certificate read from an LDAP store is renewed with its CA, not certbot.
func TargetAdvice(target, kind, severity string) string {
	if kind == KindExpiry && strings.HasPrefix(target, LDAPLabel) {
		return "renew the certificate with its CA and replace it in the LDAP entry; the finding closes once the store no longer has this one."
	}
	return Advice(kind, severity)
}

// Advice says what an owner should do about a finding of kind at
// severity, in one line of an alert mail.
func Advice(kind, severity string) string {
	if kind == KindExpiry && severity == Expired {
		return "the certificate has expired: renew it now (certbot renew) and reload the server."
	}
	if a, ok := advice[kind]; ok {
		return a
	}
	return "see the account page."
}

// advice is every kind's line of advice.
var advice = map[string]string{
	KindExpiry:             "certbot has not renewed: check `certbot renew --dry-run` on the host, and that its timer runs.",
	KindStale:              "an address still serves the old certificate: reload that server (or the load balancer node).",
	KindUnreach:            "check the name's DNS records and that port is open from the internet; a private address is never probed.",
	KindUntrusted:          "serve the full chain (fullchain.pem, not cert.pem) from a CA browsers trust, and check the clock.",
	KindMismatch:           "the certificate does not cover this name: add it (certbot --expand -d NAME) or fix the server's SNI.",
	KindRevoked:            "the CA revoked this certificate: get a new one (certbot renew --force-renewal) and reload.",
	KindWeak:               "re-issue with an ECDSA or RSA 2048+ key and a SHA-256 signature (certbot --key-type ecdsa).",
	KindACMEInvalid:        "the CA could not validate the name: check that port 80 (HTTP-01) or the DNS record (DNS-01) reaches this host, then `certbot renew --dry-run`.",
	KindACMERateLimited:    "the CA's rate limit was hit: stop retrying in a loop, test against staging (--dry-run), and wait for the limit's window to pass.",
	KindACMEBadNonce:       "many badNonce errors: check the host's clock and anything between the client and the CA (a proxy or load balancer that replays requests).",
	KindACMEAccountFailing: "this ACME account keeps failing: run the client by hand with -v on the host to read the CA's errors, and check the account is not deactivated.",
	KindAgentSilent:        "the agent has not called in: check that its service runs (systemctl status keychest-agent) and can reach the server; its site's targets are not probed meanwhile.",
	KindACMENotRenewing:    "no client has even tried to renew: check that the certbot timer (systemctl list-timers) or cron job runs and goes through the proxy.",
}

// DetailLines is how a finding's detail is laid out in a mail: a monitor
// finding's detail lists its addresses separated by "; ", one a line; any
// other kind's detail carries text from outside (an ACME server's error)
// and stays on one line, so that text can never start a line of its own.
func DetailLines(kind, detail string) []string {
	if slices.Contains(MonitorKinds, kind) {
		return strings.Split(detail, "; ")
	}
	return []string{detail}
}
