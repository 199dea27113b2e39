package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// stop returns only once every background task has ended: the renewal
// check too, which stops late here on purpose.
func TestStopWaitsForEveryTask(t *testing.T) {
	a, _ := wireApp(t, nil)
	var ended atomic.Bool
	started := make(chan struct{})
	a.renewals = func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // a check that finishes its round
		ended.Store(true)
	}
	a.launch()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !ended.Load() {
		t.Fatal("stop returned before the renewal check ended")
	}
}
