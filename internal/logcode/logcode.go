// SPDX-License-Identifier: Apache-2.0

// Package logcode names every event code of the JSON logs, in one place.
// docs/log-codes.md describes each code, its level and its fields; a test
// keeps the two lists equal. Every entry carries its code in "code" and the
// time of its event in "event_time".
package logcode

// Codes of keychest-lined's server: starting, serving and stopping.
const (
	// Serving (SRV0001): listening, migrations applied.
	Serving = "SRV0001"
	// ConnsLowered (SRV0004): KEYCHEST_MAX_CONNS lowered below the open-file limit.
	ConnsLowered = "SRV0004"
	// PProfFailed (SRV0005): the pprof listener (KEYCHEST_PPROF) failed.
	PProfFailed = "SRV0005"
	// ShutdownRequested (SRV0010): shutdown requested by a signal.
	ShutdownRequested = "SRV0010"
	// Stopped (SRV0011): the server stopped.
	Stopped = "SRV0011"
	// ShutdownTimedOut (SRV0012): shutdown timed out with connections still open.
	ShutdownTimedOut = "SRV0012"
	// NotifyFailed (SRV0030): systemd's notify socket refused a notice.
	NotifyFailed = "SRV0030"
)

// Codes of the line protocol.
const (
	// CommandAnswered (LIN0001): a command was answered, one entry per command.
	CommandAnswered = "LIN0001"
	// ConnRefused (LIN0503): a connection was refused by a connection limit.
	ConnRefused = "LIN0503"
)

// Codes of the mail sender.
const (
	// MailLogged (MAIL0001): a mail written to the log because no SMTP server is configured.
	MailLogged = "MAIL0001"
	// ClaimMailSent (MAIL0200): a claim mail (confirm, new_key) was delivered over SMTP.
	ClaimMailSent = "MAIL0200"
	// AlertMailSent (MAIL0210): an alert mail was delivered over SMTP.
	AlertMailSent = "MAIL0210"
	// DigestSent (MAIL0220): a weekly digest was delivered over SMTP.
	DigestSent = "MAIL0220"
	// MailRetry (MAIL0500): an SMTP delivery failed for now; it is retried with backoff.
	MailRetry = "MAIL0500"
	// OutboxUnreadable (MAIL0503): the outbox could not be read.
	OutboxUnreadable = "MAIL0503"
	// MailFailed (MAIL0550): a mail failed for good (5xx, or KEYCHEST_MAIL_GIVE_UP passed).
	MailFailed = "MAIL0550"
)

// Codes of the certificate monitor.
const (
	// MonitorStarted (MON0001): the certificate monitor started.
	MonitorStarted = "MON0001"
	// MonitorStopped (MON0002): the monitor stopped.
	MonitorStopped = "MON0002"
	// HistoryDeleted (MON0010): history older than KEYCHEST_MONITOR_HISTORY deleted.
	HistoryDeleted = "MON0010"
	// DigestsQueued (MON0020): weekly digests queued.
	DigestsQueued = "MON0020"
	// Probed (MON0100): a target was probed and nothing worth more than debug changed.
	Probed = "MON0100"
	// FindingOpened (MON0101): a finding opened.
	FindingOpened = "MON0101"
	// FindingChanged (MON0102): an open finding's severity or detail changed.
	FindingChanged = "MON0102"
	// FindingClosed (MON0103): a finding closed.
	FindingClosed = "MON0103"
	// CertRenewed (MON0104): a certificate was renewed on every address.
	CertRenewed = "MON0104"
	// LeaseFailed (MON0500): the monitor could not sync or lease targets.
	LeaseFailed = "MON0500"
	// WriteBackFailed (MON0501): probes could not be written back.
	WriteBackFailed = "MON0501"
	// LeaseLost (MON0502): a probe's lease ran out before its write.
	LeaseLost = "MON0502"
)

// Codes of the web server and the ACME checks.
const (
	// LinkUsed (WEB0200): a mail link was used.
	LinkUsed = "WEB0200"
	// ACMEEventsStored (WEB0201): a batch of keychest-amp events was stored.
	ACMEEventsStored = "WEB0201"
	// ACMEEventFinding (WEB0202): a batch of keychest-amp events opened, changed or closed an ACME finding.
	ACMEEventFinding = "WEB0202"
	// ACMEDomainLimit (WEB0429): a name of a valid order was not added: the key is at its domain limit.
	ACMEDomainLimit = "WEB0429"
	// ACMEEventsRefused (WEB0403): a batch of keychest-amp events was refused: a key that may not post, a batch past the limits, the key's budget used up, or a client gone.
	ACMEEventsRefused = "WEB0403"
	// RenewalFinding (ACM0101): the ACME renewal check opened, changed or closed a finding.
	RenewalFinding = "ACM0101"
	// RenewalCheckFailed (ACM0503): the ACME renewal check failed.
	RenewalCheckFailed = "ACM0503"
)

// Codes of errors.
const (
	// CannotStart (ERR0001): migrations failed or the database URL is bad.
	CannotStart = "ERR0001"
	// CannotListen (ERR0002): cannot listen, or the event loop or a web
	// listener stopped unasked.
	CannotListen = "ERR0002"
	// Internal (ERR0500): a handler failed unexpectedly or panicked; the client got 500.
	Internal = "ERR0500"
	// DetachFailed (ERR0501): a detached connection could not be taken over.
	DetachFailed = "ERR0501"
	// InflightLost (ERR0502): a connection whose request ran in flight
	// could not be put back in the event loop's epoll set; it stays open
	// until the server stops.
	InflightLost = "ERR0502"
	// DatabaseUnavailable (ERR0503): the database is unreachable.
	DatabaseUnavailable = "ERR0503"
)
