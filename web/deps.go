// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"net/netip"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/store"
)

// Tokens is what the links of the mails and /healthz need of the storage:
// look a link up, use it, and check that the database answers.
type Tokens interface {
	// LookupToken reports what a link for action does, without using it.
	LookupToken(ctx context.Context, action, raw string) (store.TokenInfo, error)
	// UseToken marks a link for action used and does what it stands for,
	// in one transaction. A link works once, within store.TokenLifetime.
	UseToken(ctx context.Context, action, raw string, ip netip.Addr) (store.TokenInfo, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}

// Accounts is what the account page needs of the storage.
type Accounts interface {
	// AccountPage reads the account an account-page link stands for.
	AccountPage(ctx context.Context, raw string) (store.AccountView, error)
}

// ACMEStore is what POST /api/v1/acme/events needs of the storage.
type ACMEStore interface {
	// KeyStatus reads the state of the key that posts.
	KeyStatus(ctx context.Context, k store.KeyRef) (store.KeyStatus, error)
	// StoreACMEEvents stores a batch in one transaction, with the domains
	// and findings its new events call for.
	StoreACMEEvents(ctx context.Context, b store.ACMEBatch) (store.ACMEStored, error)
}

// Deps is everything the web endpoints use, given to New at once. A nil
// Accounts or ACME leaves its endpoint out (a test's choice: the server
// gives both).
type Deps struct {
	Tokens   Tokens   // the links of the mails and /healthz; required
	Accounts Accounts // GET /account/{token}
	ACME     ACMEStore
	// ACMELimits are the ACME endpoint's limits (DefaultACMELimits are
	// the settings' defaults).
	ACMELimits ACMELimits
	// Metrics are served on /metrics; nil serves none there
	// (KEYCHEST_METRICS_LISTEN serves them apart: MetricsOnly).
	Metrics *Metrics
	// Proxies are the peers whose X-Forwarded-For is believed
	// (KEYCHEST_PROXY_FROM).
	Proxies []netip.Prefix
	Log     zerolog.Logger
	// Agents is the agent API's store (/api/v1/agent/, web/agent.go); nil
	// leaves the API out. AgentLimits' zero fields take
	// DefaultAgentLimits'.
	Agents      AgentStore
	AgentLimits AgentLimits
	// Watch, when set, is called after an agent's post stored new LDAP
	// certificates or marked some gone: the monitor judges them at once.
	Watch func()
}
