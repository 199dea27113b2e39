// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A write started without waiting is refused at once, and never answered,
// when the queue is full.
func TestStartRefusedWhenQueueFull(t *testing.T) {
	g := newGroupCommitter(nil, 0, 1) // no writers: the queue (4) fills
	var calls atomic.Int32
	then := func(error) { calls.Add(1) }
	for i := 0; i < cap(g.ops); i++ {
		if !g.start(context.Background(), &writeOp{}, then) {
			t.Fatalf("start %d refused with room in the queue", i)
		}
	}
	if g.start(context.Background(), &writeOp{}, then) {
		t.Fatal("start on a full queue was taken")
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("then called %d times, want 0", n)
	}
}

// A started write whose context ends before its batch hears the context's
// error, once: not again when a writer then drops it, nor when it commits.
func TestStartAnsweredOnceWhenContextEnds(t *testing.T) {
	g := newGroupCommitter(nil, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	heard := make(chan error, 3)
	if !g.start(ctx, &writeOp{}, func(err error) { calls.Add(1); heard <- err }) {
		t.Fatal("start refused")
	}
	cancel()
	select {
	case err := <-heard:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("heard %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing heard after the context ended")
	}
	op := <-g.ops
	g.commit([]*writeOp{op}) // a writer drops it: its context ended
	op.then(nil)             // and should a batch still answer it
	if n := calls.Load(); n != 1 {
		t.Fatalf("then called %d times, want 1", n)
	}
}
