package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the Store on PostgreSQL. pgx prepares each statement once per
// connection and reuses it.
type Postgres struct {
	pool *pgxpool.Pool
}

// Open connects a pool of at most maxConns connections to databaseURL.
// It does not wait for the database: a database that is down at start is
// reported by the first command as ErrUnavailable.
func Open(ctx context.Context, databaseURL string, maxConns int) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(maxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Postgres{pool: pool}, nil
}

// Close closes every connection of the pool.
func (p *Postgres) Close() { p.pool.Close() }

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error { return classify(p.pool.Ping(ctx)) }

const createKeySQL = `
WITH k AS (
    INSERT INTO api_keys (key_hash, key_prefix, origin, created_ip)
    VALUES ($1, $2, 'server', $3)
    RETURNING id
)
INSERT INTO audit (remote_ip, action, key_prefix) SELECT $3, 'key.issue', $2 FROM k`

// CreateKey registers a key the server generated.
func (p *Postgres) CreateKey(ctx context.Context, k NewKey) error {
	_, err := p.pool.Exec(ctx, createKeySQL, k.Key.Hash[:], k.Key.Prefix, inet(k.IP))
	return classify(err)
}

// lockKeySQL takes the key's row lock before addDomainSQL starts, so that
// addDomainSQL's snapshot already holds every domain committed for the key
// by adds that held the lock before: it serialises adds for one key.
const lockKeySQL = `SELECT id FROM api_keys WHERE key_hash = $1 FOR UPDATE`

// addDomainSQL inserts the domain unless the key is at its limit, counts
// and audits it. The final SELECT sees the rows as they were before the
// statement, which tells "exists" from "limit reached".
const addDomainSQL = `
WITH key AS (
    SELECT id, domain_count FROM api_keys WHERE key_hash = $1
), ins AS (
    INSERT INTO domains (api_key_id, name, port, wildcard, created_ip)
    SELECT id, $2, $3, $4, $5 FROM key WHERE domain_count < $6
    ON CONFLICT (api_key_id, name, port) DO NOTHING
    RETURNING api_key_id
), bump AS (
    UPDATE api_keys SET domain_count = domain_count + 1, last_seen_at = now()
    FROM ins WHERE api_keys.id = ins.api_key_id
    RETURNING api_keys.id
), logged AS (
    INSERT INTO audit (remote_ip, action, key_prefix, detail)
    SELECT $5, 'domain.add', $7, jsonb_build_object('domain', $2::text, 'port', $3::int) FROM ins
)
SELECT (SELECT count(*) FROM key),
       (SELECT count(*) FROM ins),
       (SELECT count(*) FROM domains d JOIN key ON d.api_key_id = key.id
         WHERE d.name = $2 AND d.port = $3)`

// AddDomain records a domain for a known key. Both statements go in one
// round trip and run as one implicit transaction.
func (p *Postgres) AddDomain(ctx context.Context, d NewDomain) (AddOutcome, error) {
	batch := &pgx.Batch{}
	batch.Queue(lockKeySQL, d.Key.Hash[:])
	batch.Queue(addDomainSQL, d.Key.Hash[:], d.Name, d.Port, d.Wildcard, inet(d.IP), d.MaxPerKey, d.Key.Prefix)
	results := p.pool.SendBatch(ctx, batch)
	var keys, inserted, existing int
	_, err := results.Exec()
	if err == nil {
		err = results.QueryRow().Scan(&keys, &inserted, &existing)
	}
	if closeErr := results.Close(); err == nil {
		err = closeErr
	}
	switch {
	case err != nil:
		return 0, classify(err)
	case keys == 0:
		return 0, ErrUnknownKey
	case inserted == 1:
		return DomainAdded, nil
	case existing > 0:
		return DomainExists, nil
	default:
		return 0, ErrDomainLimit
	}
}

// ClaimKey binds a key to the account of an email address. A key the
// server does not know yet is registered as one the client made. Two
// claims racing on one new key both try to insert it; the loser sees a
// unique violation and runs again, now finding the winner's row.
func (p *Postgres) ClaimKey(ctx context.Context, c Claim) (ClaimOutcome, error) {
	for attempt := 0; ; attempt++ {
		var out ClaimOutcome
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			var err error
			out, err = claimInTx(ctx, tx, c)
			return err
		})
		if isUniqueViolation(err) && attempt == 0 {
			continue
		}
		if err != nil {
			return 0, classify(err)
		}
		return out, nil
	}
}

func claimInTx(ctx context.Context, tx pgx.Tx, c Claim) (ClaimOutcome, error) {
	accountID, created, err := ensureAccount(ctx, tx, c)
	if err != nil {
		return 0, err
	}
	var keyID int64
	var owner *int64
	err = tx.QueryRow(ctx, `SELECT id, account_id FROM api_keys WHERE key_hash = $1 FOR UPDATE`,
		c.Key.Hash[:]).Scan(&keyID, &owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		_, err = tx.Exec(ctx, `INSERT INTO api_keys
			(key_hash, key_prefix, origin, account_id, created_ip, claimed_at, claimed_ip)
			VALUES ($1, $2, 'client', $3, $4, now(), $4)`, c.Key.Hash[:], c.Key.Prefix, accountID, inet(c.IP))
	case err != nil:
		return 0, err
	case owner != nil && *owner == accountID:
		return ClaimUnchanged, nil
	case owner != nil:
		return 0, ErrKeyClaimed
	default:
		_, err = tx.Exec(ctx, `UPDATE api_keys SET account_id = $2, claimed_at = now(), claimed_ip = $3
			WHERE id = $1`, keyID, accountID, inet(c.IP))
	}
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit (remote_ip, action, key_prefix, detail)
		VALUES ($1, 'key.claim', $2, jsonb_build_object('email', $3::text, 'new_account', $4::bool))`,
		inet(c.IP), c.Key.Prefix, c.Email, created)
	if err != nil {
		return 0, err
	}
	if created {
		return ClaimNewAccount, nil
	}
	return ClaimExistingAccount, nil
}

// ensureAccount returns the id of the account for c.Email, creating it
// dormant (unconfirmed) when it is new.
func ensureAccount(ctx context.Context, tx pgx.Tx, c Claim) (id int64, created bool, err error) {
	err = tx.QueryRow(ctx, `INSERT INTO accounts (email, created_ip) VALUES ($1, $2)
		ON CONFLICT (email) DO NOTHING RETURNING id`, c.Email, inet(c.IP)).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, err
	}
	err = tx.QueryRow(ctx, `SELECT id FROM accounts WHERE email = $1`, c.Email).Scan(&id)
	return id, false, err
}

// inet turns an address into a value for an inet column (NULL if unset).
func inet(ip netip.Addr) any {
	if !ip.IsValid() {
		return nil
	}
	return ip
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// classify marks errors that mean "the database cannot be reached or is
// not accepting work right now" as ErrUnavailable; the rest pass through.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeyClaimed) {
		return err
	}
	var pgErr *pgconn.PgError
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	switch {
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 53: insufficient resources;
		// 57P: operator intervention (shutdown, cannot connect now).
		if strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") ||
			strings.HasPrefix(pgErr.Code, "57P") {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.As(err, &connectErr),
		errors.As(err, &netErr), pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
