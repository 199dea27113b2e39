package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the Store on PostgreSQL. pgx prepares each statement once per
// connection and reuses it. New keys and domains go through group commit.
type Postgres struct {
	pool   *pgxpool.Pool
	writes *groupCommitter
	stop   chan struct{} // closed by Close: ends the sweep of rate_buckets
}

// Group commit: batch writers, and the most commands in one transaction.
const (
	batchWriters = 2
	maxBatch     = 512
)

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
	p := &Postgres{pool: pool, writes: newGroupCommitter(pool, batchWriters, maxBatch), stop: make(chan struct{})}
	go p.sweepLimits(10*time.Minute, p.stop)
	return p, nil
}

// Close closes every connection of the pool.
func (p *Postgres) Close() {
	close(p.stop)
	p.pool.Close()
}

// Ping checks that the database answers.
func (p *Postgres) Ping(ctx context.Context) error { return classify(p.pool.Ping(ctx)) }

// createKeySQL takes a token of the client's "apikey" bucket and, if it
// got one, inserts the key and audits it.
var createKeySQL = `
WITH ` + takeTokenSQL(limitKeys, 4, 5) + `, k AS (
    INSERT INTO api_keys (key_hash, key_prefix, origin, created_ip)
    SELECT $1, $2, 'server', $3 FROM allowed WHERE ok
    RETURNING id
), logged AS (
    INSERT INTO audit (remote_ip, action, key_prefix) SELECT $3, 'key.issue', $2 FROM k
)
SELECT ok, tokens FROM allowed`

// CreateKey registers a key the server generated, unless the client is
// past its limit of new keys (a *LimitError).
func (p *Postgres) CreateKey(ctx context.Context, k NewKey) error {
	client, perHour := bucketArgs(k.IP, k.MaxPerIPHour)
	var ok bool
	var tokens float64
	order := k.Key.Hash[:]
	if perHour > 0 {
		order = bucketOrder(limitKeys, k.IP)
	}
	err := p.writes.do(ctx, &writeOp{
		order: order,
		queue: func(b *pgx.Batch) {
			b.Queue(createKeySQL, k.Key.Hash[:], k.Key.Prefix, inet(k.IP), client, perHour)
		},
		read: func(br pgx.BatchResults) error { return br.QueryRow().Scan(&ok, &tokens) },
	})
	if err != nil {
		return classify(err)
	}
	return limitError(ok, tokens, k.IP, perHour)
}

// addDomainSQL inserts the domain unless the key is revoked, blocked or at
// its limit, counts and audits it, all in one statement. It locks the key's
// row before anything else, so adds for one key run one after another (and
// see its current count: the limit is exact), and every statement takes its
// locks in the same order: key row, then domain. ON CONFLICT finds a domain
// already there. Outcome: inserted; or, under the limit, the insert met an
// existing row; or, at the limit, the snapshot tells "exists" from "limit
// reached" (a racing insert of the same domain that filled the key is not
// in that snapshot: AddDomain looks again before it says "limit reached").
//
// The count is api_keys.domain_count, kept on the key's row on purpose: a
// statement that waited for the row lock reads the row as it is now, but a
// count(*) of domains would read the statement's older snapshot and miss
// adds that committed meanwhile, letting racing adds pass the limit. Only
// this statement and RemoveDomain change domains, and each keeps the count
// in the same transaction (the domains of a deleted key go with its row).
const addDomainSQL = `
WITH key AS (
    SELECT k.id, k.domain_count, k.revoked_at IS NOT NULL AS revoked,
           coalesce(a.blocked_at IS NOT NULL, false) AS blocked,
           coalesce(a.confirmed_at IS NOT NULL, false) AS confirmed
    FROM api_keys k LEFT JOIN accounts a ON a.id = k.account_id
    WHERE k.key_hash = $1
    FOR NO KEY UPDATE OF k
), ins AS (
    INSERT INTO domains (api_key_id, name, port, wildcard, created_ip)
    SELECT id, $2, $3, $4, $5 FROM key WHERE domain_count < $6 AND NOT revoked AND NOT blocked
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
       coalesce((SELECT domain_count < $6 FROM key), false)
         OR EXISTS (SELECT 1 FROM domains d JOIN key ON d.api_key_id = key.id WHERE d.name = $2 AND d.port = $3),
       coalesce((SELECT revoked FROM key), false),
       coalesce((SELECT blocked FROM key), false),
       coalesce((SELECT confirmed FROM key), false)`

// AddDomain records a domain for a known key; its statement joins a group
// commit.
func (p *Postgres) AddDomain(ctx context.Context, d NewDomain) (AddResult, error) {
	if d.MaxPerKey <= 0 {
		d.MaxPerKey = math.MaxInt32 // no limit
	}
	op, result := addDomainOp(d)
	if err := p.writes.do(ctx, op); err != nil {
		// The variables may still be written by a batch that outlived ctx.
		return AddResult{}, classify(err)
	}
	res, err := result()
	if errors.Is(err, ErrDomainLimit) && p.domainExists(ctx, d) {
		return AddResult{Outcome: DomainExists, Active: res.Active}, nil
	}
	return res, err
}

// domainExists looks, with a fresh snapshot, for a domain of the key.
func (p *Postgres) domainExists(ctx context.Context, d NewDomain) bool {
	var exists bool
	err := p.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM domains d JOIN api_keys k ON k.id = d.api_key_id
		WHERE k.key_hash = $1 AND d.name = $2 AND d.port = $3)`, d.Key.Hash[:], d.Name, d.Port).Scan(&exists)
	return err == nil && exists
}

// addDomainOp is an add's statement for a batch, and how to read its
// outcome once the batch committed.
func addDomainOp(d NewDomain) (*writeOp, func() (AddResult, error)) {
	var keys, inserted int
	var existing, revoked, blocked, confirmed bool
	op := &writeOp{
		order: d.Key.Hash[:],
		queue: func(b *pgx.Batch) {
			b.Queue(addDomainSQL, d.Key.Hash[:], d.Name, d.Port, d.Wildcard, inet(d.IP), d.MaxPerKey, d.Key.Prefix)
		},
		read: func(br pgx.BatchResults) error {
			return br.QueryRow().Scan(&keys, &inserted, &existing, &revoked, &blocked, &confirmed)
		},
	}
	return op, func() (AddResult, error) {
		res := AddResult{Active: confirmed && !blocked}
		switch {
		case keys == 0:
			return res, ErrUnknownKey
		case revoked:
			return res, ErrKeyRevoked
		case blocked:
			return res, ErrAccountBlocked
		case inserted == 1:
			res.Outcome = DomainAdded
		case existing:
			res.Outcome = DomainExists
		default:
			return res, ErrDomainLimit
		}
		return res, nil
	}
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

// isOwn reports whether err is (or wraps) one of this package's errors.
func isOwn(err error) bool {
	var own ownError
	return errors.As(err, &own)
}

// refusals word the schema's rules a client can break, by constraint name.
var refusals = map[string]string{
	"domains_name_check": fmt.Sprintf("domain longer than %d characters", MaxDomainName),
	"domains_port_check": "port must be a number from 1 to 65535",
}

// refusal words a constraint violation for the client: the rule, never
// the values (the detail may hold a key's hash).
func refusal(pgErr *pgconn.PgError) string {
	if text, ok := refusals[pgErr.ConstraintName]; ok {
		return text
	}
	if pgErr.ConstraintName != "" {
		return "the value breaks the rule " + pgErr.ConstraintName
	}
	return "the value breaks a rule of the database"
}

// classify marks errors that mean "the database cannot be reached or is
// not accepting work right now" as ErrUnavailable, and values the schema
// refused as ErrRefused; the rest pass through.
func classify(err error) error {
	if err == nil || isOwn(err) {
		return err
	}
	var pgErr *pgconn.PgError
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	switch {
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 53: insufficient resources;
		// 57P: operator intervention (shutdown, cannot connect now);
		// 40001/40P01: serialization failure, deadlock: worth a retry.
		if strings.HasPrefix(pgErr.Code, "23") {
			return fmt.Errorf("%w: %s", ErrRefused, refusal(pgErr))
		}
		if strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53") ||
			strings.HasPrefix(pgErr.Code, "57P") || pgErr.Code == "40001" || pgErr.Code == "40P01" {
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
