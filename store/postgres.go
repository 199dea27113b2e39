// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"fmt"
	"io"
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

	// alertBatchSet is how long the alert mail of findings raised outside
	// the monitor (from ACME events) gathers; 0: finding.DefaultAlertBatch.
	alertBatchSet time.Duration
}

// Option is a setting of Open.
type Option func(*Postgres)

// WithAlertBatch sets how long the alert mail of findings raised outside
// the monitor (from ACME events and the renewal check) gathers; 0 or
// unset: finding.DefaultAlertBatch.
func WithAlertBatch(d time.Duration) Option { return func(p *Postgres) { p.alertBatchSet = d } }

// Group commit: batch writers, and the most commands in one transaction.
// One writer: while its batch is in PostgreSQL the next one gathers, so a
// batch grows with the time a round trip takes, by itself. A second writer
// halves the batches for no more throughput on the bench, and costs
// PostgreSQL more CPU per write (docs/add-path.md has the figures).
const (
	batchWriters = 1
	maxBatch     = 512
)

// Open connects a pool of at most maxConns connections to databaseURL.
// It does not wait for the database: a database that is down at start is
// reported by the first command as ErrUnavailable.
func Open(ctx context.Context, databaseURL string, maxConns int, opts ...Option) (*Postgres, error) {
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
	for _, o := range opts {
		o(p)
	}
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

// refused is ErrRefused for the rule of the named constraint, worded for
// the client: the rule, never the values (a violation's detail may hold a
// key's hash).
func refused(constraint string) error {
	text, ok := refusals[constraint]
	switch {
	case ok:
	case constraint != "":
		text = "the value breaks the rule " + constraint
	default:
		text = "the value breaks a rule of the database"
	}
	return fmt.Errorf("%w: %s", ErrRefused, text)
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
			return refused(pgErr.ConstraintName)
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
