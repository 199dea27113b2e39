// Package store keeps accounts, API keys and domains in PostgreSQL.
// It knows SQL and nothing of sockets or the line protocol.
package store

import (
	"context"
	"errors"
	"net/netip"
)

// Store is what the handlers need from storage. Every method returns only
// after its transaction committed, or with an error and nothing written.
type Store interface {
	// CreateKey registers a key the server generated.
	CreateKey(ctx context.Context, k NewKey) error
	// ClaimKey binds a key to the account of an email address, creating
	// the account (unconfirmed) and registering the key as needed.
	ClaimKey(ctx context.Context, c Claim) (ClaimOutcome, error)
	// AddDomain records a domain to watch for a known key.
	AddDomain(ctx context.Context, d NewDomain) (AddOutcome, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}

// KeyRef identifies an API key by its SHA-256 hash; Prefix is the short,
// loggable start of the key.
type KeyRef struct {
	Hash   [32]byte
	Prefix string
}

// NewKey is a key issued by "command apikey".
type NewKey struct {
	Key KeyRef
	IP  netip.Addr
}

// Claim asks to bind Key to the account of Email.
type Claim struct {
	Key   KeyRef
	Email string // normalised
	IP    netip.Addr
}

// ClaimOutcome says what a successful claim changed.
type ClaimOutcome int

const (
	// ClaimNewAccount bound the key to a newly created, unconfirmed account.
	ClaimNewAccount ClaimOutcome = iota + 1
	// ClaimExistingAccount bound the key to an account that already existed.
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
	MaxPerKey int // refuse with ErrDomainLimit past this many domains
}

// AddOutcome says whether AddDomain stored a new row.
type AddOutcome int

const (
	// DomainAdded stored a new domain.
	DomainAdded AddOutcome = iota + 1
	// DomainExists found the domain already recorded for the key.
	DomainExists
)

// Errors the handlers turn into status codes.
var (
	ErrUnknownKey  = errors.New("unknown api key")
	ErrKeyClaimed  = errors.New("api key bound to another email")
	ErrDomainLimit = errors.New("domain limit reached for this key")
	ErrUnavailable = errors.New("database unavailable")
)
