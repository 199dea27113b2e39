// SPDX-License-Identifier: Apache-2.0

package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// writeOp is one command's writes, queued for group commit: either
// statements of its own (queue, read), or an add (add), which joins the
// batch's other adds in one set-based statement (see adds.go).
type writeOp struct {
	ctx   context.Context
	order []byte                          // rows it locks, for a lock order shared by all batches
	queue func(b *pgx.Batch)              // adds its statements
	read  func(br pgx.BatchResults) error // reads its results, in the order queued
	add   *addRow                         // or: the add it asks, and its answer
	done  chan error                      // the batch's commit outcome; or:
	then  func(error)                     // called with it, on the writer
}

// finish reports the batch's outcome to op's command.
func (op *writeOp) finish(err error) {
	if op.then != nil {
		op.then(err)
		return
	}
	op.done <- err
}

// setFailed is send's answer when the adds' set-based statement failed on
// a value: one of its adds is at fault, but which one is not known.
const setFailed = -2

// groupCommitter runs the writes that are waiting as one transaction: many
// commands, one commit, one WAL flush. Each command learns its own outcome
// from its own statements, and hears back only after the commit.
type groupCommitter struct {
	pool     *pgxpool.Pool
	ops      chan *writeOp
	maxBatch int
	sent     atomic.Int64 // batches sent, retries included
}

// WritesWaiting is the number of writes queued for the group-commit writer,
// not yet in a batch; past 4x the largest batch (2,048), an add that the
// loop starts goes to a worker, and one that waits blocks until there is room.
func (p *Postgres) WritesWaiting() int { return len(p.writes.ops) }

// newGroupCommitter starts writers batch writers on pool.
func newGroupCommitter(pool *pgxpool.Pool, writers, maxBatch int) *groupCommitter {
	g := &groupCommitter{pool: pool, ops: make(chan *writeOp, 4*maxBatch), maxBatch: maxBatch}
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

// start queues op without waiting. then hears its outcome once: the
// batch's, on the writer, or ctx's error when ctx ends first (as in do,
// the batch may still commit the op later). It reports false, and never
// calls then, when the queue is full.
func (g *groupCommitter) start(ctx context.Context, op *writeOp, then func(error)) bool {
	var once atomic.Bool
	finish := func(err error) {
		if once.CompareAndSwap(false, true) {
			then(err)
		}
	}
	stop := context.AfterFunc(ctx, func() { finish(ctx.Err()) })
	op.ctx = ctx
	op.then = func(err error) {
		stop()
		finish(err)
	}
	select {
	case g.ops <- op:
		return true
	default:
		// Unless ctx ended meanwhile, and then has been called.
		return !stop()
	}
}

// writer takes the first waiting op, then whatever else is already
// waiting (up to maxBatch), and commits them together.
func (g *groupCommitter) writer() {
	for first := range g.ops {
		batch := append(make([]*writeOp, 0, g.maxBatch), first)
	gather:
		for len(batch) < g.maxBatch {
			select {
			case op := <-g.ops:
				batch = append(batch, op)
			default:
				break gather
			}
		}
		g.commit(batch)
	}
}

// commit runs a batch as one implicit transaction (a pgx batch is sent with
// a single Sync): all statements in one round trip, committed at the end.
// Rows are locked in one order in every batch, so batches never deadlock:
// the commands' own statements (new keys, by rate bucket) in the order of
// their order field, then the adds' keys, in key_hash order.
//
// A statement that fails aborts the whole transaction. When the failing
// statement is known (it refused a value, or broke otherwise), that is its
// command's own outcome: the command hears its error, and the others, whose
// writes were rolled back with it, go again together in one more batch.
// When the adds' set-based statement fails on a value, the batch goes
// again in halves, until the add at fault is alone. Only a failure at
// commit, which names no command, makes each command run on its own, so
// that only the bad one fails.
func (g *groupCommitter) commit(batch []*writeOp) {
	slices.SortStableFunc(batch, func(a, b *writeOp) int { return bytes.Compare(a.order, b.order) })
	live := slices.DeleteFunc(batch, func(op *writeOp) bool {
		err := op.ctx.Err()
		if err != nil {
			op.finish(err)
		}
		return err != nil
	})
	for len(live) > 0 {
		bad, err := g.send(live)
		switch {
		case err == nil || errors.Is(err, ErrUnavailable):
		case bad == setFailed:
			half := len(live) / 2
			g.commit(live[:half])
			g.commit(live[half:])
			return
		case bad >= 0:
			live[bad].finish(err)
			live = slices.Delete(live, bad, bad+1)
			continue
		case len(live) > 1:
			for _, op := range live {
				_, err := g.send([]*writeOp{op})
				op.finish(err)
			}
			return
		}
		for _, op := range live {
			op.finish(err)
		}
		return
	}
}

// send runs ops as one batch. On failure it reports the index of the op
// whose statement failed, setFailed, or -1 when no statement did (the
// commit or the connection failed).
func (g *groupCommitter) send(ops []*writeOp) (int, error) {
	g.sent.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	var adds []*writeOp
	addAt := -1 // index in ops of an add, for a set of one
	for i, op := range ops {
		if op.add != nil {
			adds, addAt = append(adds, op), i
			continue
		}
		op.queue(b)
	}
	if len(adds) > 0 {
		queueAdds(b, adds)
	}
	br := g.pool.SendBatch(ctx, b)
	bad, err := readAll(br, ops, adds)
	if bad == setFailed && len(adds) == 1 {
		bad = addAt
	}
	// Close reads through the Sync: only then is the transaction committed.
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	return bad, classify(err)
}

// readAll reads the results of send's batch: the ops' own statements in
// order, then the adds'. On a statement's failure it names its op (or
// setFailed, for the adds'); otherwise -1.
func readAll(br pgx.BatchResults, ops, adds []*writeOp) (int, error) {
	for i, op := range ops {
		if op.add != nil {
			continue
		}
		if err := op.read(br); err != nil {
			return statementAt(err, i), err
		}
	}
	if len(adds) > 0 {
		if err := readAdds(br, adds); err != nil {
			return statementAt(err, setFailed), err
		}
	}
	return -1, nil
}

// statementAt is at when err is the database refusing a statement, else -1.
func statementAt(err error, at int) int {
	if isStatementError(err) {
		return at
	}
	return -1
}

// isStatementError reports whether err is the database refusing one
// statement (rather than the connection or the server failing).
func isStatementError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !errors.Is(classify(err), ErrUnavailable)
}
