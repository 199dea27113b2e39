// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"

	"github.com/keychest/keychest-lined/store"
)

// operatorStore is what the operator's commands need of the storage.
type operatorStore interface {
	// Accounts lists every account, oldest first.
	Accounts(ctx context.Context) ([]store.Account, error)
	// AccountDomains lists the domains of an account's keys.
	AccountDomains(ctx context.Context, email string) ([]store.Domain, error)
	// AccountKeys lists an account's keys, by prefix.
	AccountKeys(ctx context.Context, email string) ([]store.Key, error)
	// SetAccount confirms or blocks an account ("confirm" or "block").
	// Confirming also approves every key that waits on the account.
	SetAccount(ctx context.Context, email, action string) error
	// RevokeKey revokes the one key whose prefix starts with prefix.
	RevokeKey(ctx context.Context, prefix string) (store.Key, error)
	// ApproveKey approves the one key whose prefix starts with prefix, as
	// the approve link of its "new key" mail does.
	ApproveKey(ctx context.Context, prefix string) (store.Key, error)
	// Certs lists watched targets (of one account's domains when email
	// is set), soonest expiry first.
	Certs(ctx context.Context, email string) ([]store.CertStatus, error)
	// Findings lists findings, newest first.
	Findings(ctx context.Context, open bool, email string) ([]store.FindingRow, error)
	// AlertMails lists recent alert mails and their outbox state.
	AlertMails(ctx context.Context, email string) ([]store.AlertMail, error)
	// DigestFor reads the digest an account would get now.
	DigestFor(ctx context.Context, email string) (store.Digest, error)
	// RotateAccountLinks revokes an account's page links.
	RotateAccountLinks(ctx context.Context, email string) (int64, error)
	// Mails lists the outbox, oldest first; only the mails failed for
	// good if failedOnly.
	Mails(ctx context.Context, failedOnly bool) ([]store.QueuedMail, error)
	// ACMEActivities lists, per domain and proxy, the last order and
	// error keychest-amp reported.
	ACMEActivities(ctx context.Context, email string) ([]store.ACMEActivity, error)
	// AllAgents and AgentLogs read the keychest-agents (agents_cli.go).
	store.AgentAdmin
	// ApproveAgentClaim gives an agent to the account its live claim
	// mail (run --email) was sent to, as the mail's button does.
	ApproveAgentClaim(ctx context.Context, agentID, email string) (string, error)
}

// The database is the operator's store: a method whose signature drifts
// fails the build here instead of leaving a command without its data.
var _ operatorStore = (*store.Postgres)(nil)
