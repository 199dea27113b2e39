package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/pgtest"
)

// stop returns only once every background task has ended: the renewal
// check too, which stops late here on purpose.
func TestStopWaitsForEveryTask(t *testing.T) {
	var cfg Config
	if err := envconfig.Process("KEYCHEST_TEST_UNSET", &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.HTTPListen, cfg.DatabaseURL = "127.0.0.1:0", "127.0.0.1:0", pgtest.NewDatabase(t)
	cfg.MonitorResolver = "127.0.0.1:1"
	a, err := start(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.db.Close()
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
