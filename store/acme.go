package store

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// ACMEEvent is one journal line reported by a keychest-amp proxy.
type ACMEEvent struct {
	Proxy    string          // the proxy's identity
	ID       int64           // its order number at that proxy
	Msg      string          // the seed's message type
	Time     time.Time       // when it happened; zero when unknown
	Params   json.RawMessage // the message's params object
	Envelope json.RawMessage // the whole line
}

// ACMEEvents stores what keychest-amp proxies report.
type ACMEEvents interface {
	// UnseenACMEEvents returns those of events not stored yet.
	UnseenACMEEvents(ctx context.Context, events []ACMEEvent) ([]ACMEEvent, error)
	// StoreACMEEvents stores events for key in one transaction, skipping
	// those already stored, with the findings the new ones call for.
	StoreACMEEvents(ctx context.Context, key KeyRef, ip netip.Addr, events []ACMEEvent) (ACMEStored, error)
}

// UnseenACMEEvents returns those of events not stored yet.
func (p *Postgres) UnseenACMEEvents(ctx context.Context, events []ACMEEvent) ([]ACMEEvent, error) {
	proxies, ids := eventKeys(events)
	rows, err := p.pool.Query(ctx, `SELECT e.proxy, e.id FROM acme_events e
		JOIN unnest($1::text[], $2::bigint[]) AS b(proxy, id) ON e.proxy = b.proxy AND e.id = b.id`, proxies, ids)
	if err != nil {
		return nil, classify(err)
	}
	type pk struct {
		proxy string
		id    int64
	}
	seen := map[pk]bool{}
	var k pk
	_, err = pgx.ForEachRow(rows, []any{&k.proxy, &k.id}, func() error {
		seen[k] = true
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	var out []ACMEEvent
	for _, e := range events {
		if !seen[pk{e.Proxy, e.ID}] {
			out = append(out, e)
		}
	}
	return out, nil
}

func eventKeys(events []ACMEEvent) ([]string, []int64) {
	proxies, ids := make([]string, len(events)), make([]int64, len(events))
	for i, e := range events {
		proxies[i], ids[i] = e.Proxy, e.ID
	}
	return proxies, ids
}

// storeACMEEventsSQL inserts the batch in one statement for the key's id
// and returns the rows that were new.
const storeACMEEventsSQL = `
INSERT INTO acme_events (proxy, id, api_key_id, msg, event_time, params, envelope, received_ip)
SELECT b.proxy, b.id, $1, b.msg, b.event_time, b.params, b.envelope, $8
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::jsonb[])
     AS b(proxy, id, msg, event_time, params, envelope)
ON CONFLICT (proxy, id) DO NOTHING
RETURNING proxy, id`

// ACMEStored is what storing a batch did: how many events were new, and
// the findings they opened, changed or closed.
type ACMEStored struct {
	Stored   int
	Findings []ACMEChange
}

// StoreACMEEvents stores events for key, skipping those already stored,
// and in the same transaction derives findings from the new ones only
// (see acme_findings.go), so a resent batch neither loses nor doubles
// a finding or its mail.
func (p *Postgres) StoreACMEEvents(ctx context.Context, key KeyRef, ip netip.Addr, events []ACMEEvent) (ACMEStored, error) {
	proxies, ids := eventKeys(events)
	msgs := make([]string, len(events))
	times := make([]*time.Time, len(events))
	params, envelopes := make([]string, len(events)), make([]string, len(events))
	for i, e := range events {
		msgs[i], params[i], envelopes[i] = e.Msg, string(e.Params), string(e.Envelope)
		if !e.Time.IsZero() {
			times[i] = &events[i].Time
		}
	}
	var out ACMEStored
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		out = ACMEStored{}
		var keyID int64
		if err := tx.QueryRow(ctx, `SELECT id FROM api_keys WHERE key_hash = $1`, key.Hash[:]).Scan(&keyID); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrUnknownKey
			}
			return err
		}
		rows, err := tx.Query(ctx, storeACMEEventsSQL, keyID, proxies, ids, msgs, times, params, envelopes, inet(ip))
		if err != nil {
			return err
		}
		fresh, err := newEvents(rows, events)
		if err != nil {
			return err
		}
		out.Stored = len(fresh)
		out.Findings, err = acmeFindings(ctx, tx, keyID, fresh, time.Now(), p.AlertBatch)
		return err
	})
	if err != nil {
		return ACMEStored{}, classify(err)
	}
	return out, nil
}

// newEvents keeps, in batch order, the events whose keys rows returned.
func newEvents(rows pgx.Rows, events []ACMEEvent) ([]ACMEEvent, error) {
	type pk struct {
		proxy string
		id    int64
	}
	inserted := map[pk]bool{}
	var k pk
	if _, err := pgx.ForEachRow(rows, []any{&k.proxy, &k.id}, func() error {
		inserted[k] = true
		return nil
	}); err != nil {
		return nil, err
	}
	var out []ACMEEvent
	for _, e := range events {
		if inserted[pk{e.Proxy, e.ID}] {
			delete(inserted, pk{e.Proxy, e.ID})
			out = append(out, e)
		}
	}
	return out, nil
}
