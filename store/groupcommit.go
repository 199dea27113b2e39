package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// writeOp is one command's writes, queued for group commit.
type writeOp struct {
	ctx   context.Context
	order []byte                          // rows it locks, for a lock order shared by all batches
	queue func(b *pgx.Batch)              // adds its statements
	read  func(br pgx.BatchResults) error // reads its results, in the order queued
	done  chan error                      // the batch's commit outcome
}

// groupCommitter runs the writes that are waiting as one transaction: many
// commands, one commit, one WAL flush. Each command learns its own outcome
// from its own statements, and hears back only after the commit.
type groupCommitter struct {
	pool     *pgxpool.Pool
	ops      chan *writeOp
	maxBatch int
	linger   time.Duration
}

// newGroupCommitter starts writers batch writers on pool.
func newGroupCommitter(pool *pgxpool.Pool, writers, maxBatch int, linger time.Duration) *groupCommitter {
	g := &groupCommitter{pool: pool, ops: make(chan *writeOp, 4*maxBatch), maxBatch: maxBatch, linger: linger}
	for i := 0; i < writers; i++ {
		go g.writer()
	}
	return g
}

// do queues op and waits until its batch committed (or failed).
func (g *groupCommitter) do(ctx context.Context, op *writeOp) error {
	op.ctx, op.done = ctx, make(chan error, 1)
	select {
	case g.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		// The batch may still commit; the command reports failure, and a
		// retry finds the row already there (every write is idempotent).
		return ctx.Err()
	}
}

// writer takes the first waiting op, then whatever else is waiting (up to
// maxBatch, lingering briefly for more), and commits them together.
func (g *groupCommitter) writer() {
	for first := range g.ops {
		batch := append(make([]*writeOp, 0, g.maxBatch), first)
		batch = g.gather(batch, 0)
		if len(batch) < g.maxBatch && g.linger > 0 {
			batch = g.gather(batch, g.linger)
		}
		g.commit(batch)
	}
}

// gather adds waiting ops to batch: those already queued, and with a
// linger, those arriving within it.
func (g *groupCommitter) gather(batch []*writeOp, linger time.Duration) []*writeOp {
	var expired <-chan time.Time
	if linger > 0 {
		timer := time.NewTimer(linger)
		defer timer.Stop()
		expired = timer.C
	}
	for len(batch) < g.maxBatch {
		select {
		case op := <-g.ops:
			batch = append(batch, op)
		case <-expired:
			return batch
		default:
			if linger == 0 {
				return batch
			}
			select {
			case op := <-g.ops:
				batch = append(batch, op)
			case <-expired:
				return batch
			}
		}
	}
	return batch
}

// commit runs a batch as one implicit transaction (a pgx batch is sent with
// a single Sync): all statements in one round trip, committed at the end.
// Rows are locked in one order in every batch, so batches never deadlock.
func (g *groupCommitter) commit(batch []*writeOp) {
	slices.SortStableFunc(batch, func(a, b *writeOp) int { return bytes.Compare(a.order, b.order) })
	live := batch[:0]
	for _, op := range batch {
		if op.ctx.Err() == nil {
			live = append(live, op)
		}
	}
	err := g.send(live)
	if err != nil && len(live) > 1 && !errors.Is(err, ErrUnavailable) {
		// A statement failed and took the batch down: run each command on
		// its own, so that only the bad one fails.
		for _, op := range live {
			op.done <- g.send([]*writeOp{op})
		}
		return
	}
	for _, op := range live {
		op.done <- err
	}
}

func (g *groupCommitter) send(ops []*writeOp) error {
	if len(ops) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	for _, op := range ops {
		op.queue(b)
	}
	br := g.pool.SendBatch(ctx, b)
	var err error
	for _, op := range ops {
		if err = op.read(br); err != nil {
			break
		}
	}
	// Close reads through the Sync: only then is the transaction committed.
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	return classify(err)
}
