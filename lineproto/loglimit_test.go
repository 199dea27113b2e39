// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
)

func TestLogLimiterBurstThenRate(t *testing.T) {
	l := newLogLimiter()
	now := time.Now()
	for i := 0; i < logBurst; i++ {
		if ok, _ := l.allow(now); !ok {
			t.Fatalf("entry %d of the burst suppressed", i)
		}
	}
	for i := 0; i < 7; i++ {
		if ok, _ := l.allow(now); ok {
			t.Fatal("entry past the burst let through")
		}
	}
	ok, skipped := l.allow(now.Add(time.Second / logRate)) // one token back
	if !ok || skipped != 7 || l.suppressed.Load() != 7 {
		t.Fatalf("after refill: ok %v, skipped %d, suppressed %d", ok, skipped, l.suppressed.Load())
	}
}

// Issue 12: a flood of malformed lines cannot fill the disk. Every line is
// answered, but the log holds at most the burst of client errors; the rest
// are counted, and the entries say how many were left out.
func TestClientErrorLogIsRateLimited(t *testing.T) {
	var sink logcode.Sink
	s := NewServer(testConfig(), &testHandler{}, zerolog.New(&sink))
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	const n = 3 * logBurst
	c := dial(t, s.Addr().String())
	send(t, c, strings.Repeat("junk\n", n)+"command ping\n")
	got := readStatuses(t, bufio.NewReader(c), n+1)
	if got[n-1] != `status error 400 name "junk" has no value` || got[n] != "status ok 200 pong" {
		t.Fatalf("last replies %q", got[n-1:])
	}
	entries := strings.Count(sink.String(), `"status":400`)
	if entries > logBurst+logRate || s.LogsSuppressed() != uint64(n-entries) {
		t.Fatalf("%d entries of 400 logged, %d suppressed, for %d lines", entries, s.LogsSuppressed(), n)
	}
	if !strings.Contains(sink.String(), `"status":200`) {
		t.Fatal("the ping was not logged")
	}
}
