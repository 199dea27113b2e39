// SPDX-License-Identifier: Apache-2.0

// Package store is the SQL: it keeps accounts, API keys, domains, the
// links' tokens, the audit trail, rate-limit buckets, the monitor's
// targets, observations and findings, ACME events and the outbox in
// PostgreSQL, each write in one transaction that commits before it
// returns (the line commands' writes are group-committed: many commands
// share a transaction, and each hears back only after its commit). It knows nothing of sockets, the line protocol or HTTP.
//
// It keeps SQL only. The rules it writes by are other packages': finding
// kinds, the severity order (and the SQL rank derived from it) and when a
// change is mailed are package finding's; what an ACME event means, its
// thresholds and wording are package acme's, whose judge store asks and
// whose changes it writes; what the monitor judges is package monitor's.
// The interfaces its callers need are declared by those callers (the
// monitor's Store, the mailer's Outbox, web's Deps, the operator's
// command line); *Postgres implements them, and each caller asserts so
// at compile time.
package store
