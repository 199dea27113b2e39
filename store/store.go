// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"net/netip"
	"time"

	"github.com/keychest/keychest-lined/names"
)

// Store is what the line commands need from storage. Every method that
// writes returns only after its transaction committed, or with an error and
// nothing written.
type Store interface {
	// CreateKey registers a key the server generated.
	CreateKey(ctx context.Context, k NewKey) error
	// ClaimKey binds a key to the account of an email address, creating
	// the account (unconfirmed) and registering the key as needed, and
	// queues the mail the claim calls for.
	ClaimKey(ctx context.Context, c Claim) (ClaimOutcome, error)
	// AddDomain records a domain to watch for a known key.
	AddDomain(ctx context.Context, d NewDomain) (AddResult, error)
	// RemoveDomain deletes a domain of a key; false if it was not there.
	RemoveDomain(ctx context.Context, d DomainRef) (bool, error)
	// KeyStatus reports a key's state.
	KeyStatus(ctx context.Context, k KeyRef) (KeyStatus, error)
	// KeyDomains lists a key's domains, oldest first.
	KeyDomains(ctx context.Context, k KeyRef) ([]Domain, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Watch reads and asks for the monitor's results.
	Watch
}

// AddStarter is a Store that can also start an add without waiting for it
// (Postgres can): then hears the outcome once, from another goroutine.
type AddStarter interface {
	StartAddDomain(ctx context.Context, d NewDomain, then func(AddResult, error)) bool
}

// KeyRef identifies an API key by its SHA-256 hash; Prefix is the short,
// loggable start of the key (names.HashAPIKey makes one).
type KeyRef = names.KeyRef

// NewKey is a key issued by "command apikey".
type NewKey struct {
	Key KeyRef
	IP  netip.Addr
	// MaxPerIPHour is how many new keys a client (see clientnet.Of) may get
	// per hour, counted by every server on the database (0: no limit).
	MaxPerIPHour int
}

// Claim asks to bind Key to the account of Email.
type Claim struct {
	Key   KeyRef
	Email string // normalised
	IP    netip.Addr
	// Tokens are fresh random tokens for the links of the mail; only their
	// hashes are stored, and only those the mail uses.
	Tokens MailTokens
	// Limits: claims per client (see clientnet.Of) per hour, counted by every
	// server on the database; mails to one address per day; keys of an
	// unconfirmed account. 0: no limit.
	MaxPerIPHour       int
	MaxMailsPerDay     int
	MaxUnconfirmedKeys int
}

// MailTokens are the raw tokens of a claim's mail links: confirm and
// block for an unconfirmed account's mail, approve and revoke for a
// confirmed one's ("new_key").
type MailTokens struct {
	Confirm, Block, Revoke, Approve string
}

// ClaimMail is what a claim's mail reports, stored with it in the outbox
// (outbox.claim, no secrets) and worded when it is sent.
type ClaimMail struct {
	KeyPrefix string     `json:"key_prefix"`
	IP        netip.Addr `json:"ip"` // the client's; zero if unknown
	At        time.Time  `json:"at"`
	Keys      int        `json:"keys"`    // keys the account holds now
	Domains   int        `json:"domains"` // domains the account holds now
	Expires   time.Time  `json:"expires"` // when the links stop working
	// Agent is set in an agent_claim mail: the agent the link gives away.
	Agent *AgentMail `json:"agent,omitempty"`
}

// ClaimOutcome says what a successful claim changed.
type ClaimOutcome int

const (
	// ClaimNewAccount bound the key to a newly created, unconfirmed account.
	ClaimNewAccount ClaimOutcome = iota + 1
	// ClaimExistingAccount bound the key to an account that already existed
	// (pending its owner's approval when the account is confirmed).
	ClaimExistingAccount
	// ClaimUnchanged found the key already bound to this account.
	ClaimUnchanged
)

// NewDomain asks to watch Name:Port for Key.
type NewDomain struct {
	Key       KeyRef
	Name      string // normalised, ASCII; "*.example.com" for a wildcard
	Port      int
	Wildcard  bool
	IP        netip.Addr
	MaxPerKey int // refuse with ErrDomainLimit past this many domains (0: no limit)
}

// AddOutcome says whether AddDomain stored a new row.
type AddOutcome int

const (
	// DomainAdded stored a new domain.
	DomainAdded AddOutcome = iota + 1
	// DomainExists found the domain already recorded for the key.
	DomainExists
)

// AddResult is AddOutcome and whether the key's domains are active (its
// account is confirmed and the key is not waiting for approval) or pending.
type AddResult struct {
	Outcome AddOutcome
	Active  bool
}

// DomainRef names one domain of a key.
type DomainRef struct {
	Key  KeyRef
	Name string
	Port int
	IP   netip.Addr
}

// Domain is a stored domain.
type Domain struct {
	Name      string
	Port      int
	Wildcard  bool
	KeyPrefix string
	Active    bool // the key's account is confirmed and not blocked, and the key approved
	CreatedAt time.Time
	Site      string // the site it is behind ("": a public domain)
}

// KeyStatus is the state of one key.
type KeyStatus struct {
	Prefix string
	Email  string // empty while unclaimed
	// Confirmed: the account is confirmed and the key is not waiting for
	// its owner's approval. It reads the same (no) for a key of a new
	// account and a key pending on a confirmed one, so that a claim tells
	// nobody whether an address has an account.
	Confirmed bool
	Blocked   bool
	Revoked   bool
	Domains   int
	CreatedAt time.Time
	Problems  int // domains of the key whose target has an open finding
}

// MaxDomainName is names.MaxDomainName, the one length rule of a domain
// name: the schema's CHECK domains_name_check holds the same number
// (TestDomainNameRule proves they agree).
const MaxDomainName = names.MaxDomainName

// TokenLifetime is how long the links in a mail work.
const TokenLifetime = 7 * 24 * time.Hour

// ownError is the type of this package's errors: classify passes them
// through as they are, and callers compare them with errors.Is.
type ownError string

func (e ownError) Error() string { return string(e) }

// Errors the handlers turn into status codes.
var (
	ErrUnknownKey      error = ownError("unknown api key")
	ErrKeyClaimed      error = ownError("api key bound to another email")
	ErrKeyRevoked      error = ownError("api key revoked")
	ErrAccountBlocked  error = ownError("account blocked")
	ErrDomainLimit     error = ownError("domain limit reached for this key")
	ErrMailLimit       error = ownError("mail limit reached for this address today")
	ErrUnconfirmedKeys error = ownError("unconfirmed account holds too many keys")
	ErrUnavailable     error = ownError("database unavailable")
	ErrNotFound        error = ownError("not found")
	ErrTokenUnknown    error = ownError("unknown link")
	ErrTokenUsed       error = ownError("link already used")
	ErrTokenExpired    error = ownError("link expired")
	ErrAmbiguousPrefix error = ownError("key prefix matches more than one key")
	// ErrRefused wraps a value the schema refused (SQLSTATE class 23: a
	// CHECK, NOT NULL or foreign key): the command's own fault, never the
	// database's. Its text says which rule.
	ErrRefused error = ownError("refused")
)
