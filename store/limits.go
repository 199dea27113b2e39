// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/keychest/keychest-lined/internal/clientnet"
)

// The per-address limits (new keys, claims per client per hour) are token
// buckets in the table rate_buckets, shared by every server on the
// database. A limited command takes its token in the statement it runs
// anyway (takeTokenSQL), so the limit costs no round trip of its own, and
// the bucket's row lock makes racing takes, from any server, count exactly.
// A command that fails after its take rolls the take back with the rest.

// Kinds of per-address limits: the rate_buckets rows they count in.
const (
	limitKeys   = "apikey"
	limitClaims = "claim"
)

// LimitError is a per-address limit refusing a command: errors.Is(err,
// ErrRateLimited) holds, and Wait says when the client's next token is due.
type LimitError struct {
	Client netip.Prefix // as clientnet.Of gives it
	Wait   time.Duration
}

// ErrRateLimited is what every LimitError is.
var ErrRateLimited error = ownError("per-address limit reached")

func (e *LimitError) Error() string {
	return fmt.Sprintf("%v: %s, next in %s", ErrRateLimited, e.From(), e.Wait)
}

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *LimitError) Is(target error) bool { return target == ErrRateLimited }

// From words the client for a person: an IPv4 address, or an IPv6 /64.
func (e *LimitError) From() string {
	if e.Client.Addr().Is4() {
		return e.Client.Addr().String()
	}
	return e.Client.String()
}

// bucketArgs are the two values takeTokenSQL takes: the client (NULL when
// the address is unknown) and the tokens per hour (0 when there is no
// limit, or no address to count it on).
func bucketArgs(ip netip.Addr, perHour int) (any, int) {
	if !ip.IsValid() || perHour <= 0 {
		return nil, 0
	}
	return clientnet.Of(ip), perHour
}

// takeTokenSQL is the common table expressions "lim" and "allowed" for a
// statement: take a token of the kind's bucket for the client in
// parameter $client, perHour tokens an hour ($perHour; 0: no limit). The
// bucket holds perHour tokens and refills evenly; allowed has one row:
// ok, and the tokens left (below 1 when refused). Take it first in the
// statement's transaction: every transaction locks its bucket before any
// other row.
func takeTokenSQL(kind string, client, perHour int) string {
	c, n := fmt.Sprintf("$%d::cidr", client), fmt.Sprintf("$%d::float8", perHour)
	return `lim AS (
    INSERT INTO rate_buckets AS r (kind, client, tokens, took, at)
    SELECT '` + kind + `', ` + c + `, ` + n + ` - 1, true, now() WHERE ` + n + ` > 0
    ON CONFLICT (kind, client) DO UPDATE SET (tokens, took, at) = (
        SELECT t - (t >= 1)::int, t >= 1, greatest(r.at, now())
        FROM (SELECT least(` + n + `, r.tokens + greatest(0, extract(epoch FROM now() - r.at)) * ` + n + ` / 3600) AS t) f)
    RETURNING took, tokens
), allowed AS (
    SELECT coalesce((SELECT took FROM lim), true) AS ok, coalesce((SELECT tokens FROM lim), 0) AS tokens
)`
}

// bucketOrder places a take of the kind's bucket for ip in group commit's
// lock order (see groupCommitter.commit).
func bucketOrder(kind string, ip netip.Addr) []byte {
	b, _ := clientnet.Of(ip).MarshalBinary()
	return append([]byte("bucket "+kind+" "), b...)
}

// limitError is the error for a take that was refused with tokens left
// in the bucket of ip, perHour tokens an hour; nil when ok.
func limitError(ok bool, tokens float64, ip netip.Addr, perHour int) error {
	if ok {
		return nil
	}
	wait := time.Duration((1 - tokens) / float64(perHour) * float64(time.Hour))
	return &LimitError{Client: clientnet.Of(ip), Wait: wait}
}

// sweepLimits deletes, every interval until stop closes, the buckets
// whose last take is over an hour old: they are full, as a missing row is.
func (p *Postgres) sweepLimits(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = p.sweepFullBuckets(ctx) // best effort: the next sweep tries again
			cancel()
		}
	}
}

// sweepFullBuckets deletes the buckets whose last take is over an hour
// old, and the keys' ACME budgets that are full again (acme_budget.go).
func (p *Postgres) sweepFullBuckets(ctx context.Context) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM rate_buckets WHERE at < now() - interval '1 hour'`); err != nil {
		return classify(err)
	}
	_, err := p.pool.Exec(ctx, `DELETE FROM key_buckets
		WHERE at < now() - interval '1 hour' AND (tokens >= 0 OR at < now() - interval '1 day')`)
	return classify(err)
}
