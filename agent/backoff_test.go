// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	r := 0.0
	b := Backoff{Base: time.Second, Max: 10 * time.Second, Rand: func() float64 { return r }}
	var lows []time.Duration
	for range 6 {
		lows = append(lows, b.Next())
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if lows[i] != want[i] {
			t.Fatalf("lowest waits %v, want %v", lows, want)
		}
	}
	r = 0.999999
	if d := b.Next(); d < 9*time.Second || d > 10*time.Second {
		t.Fatalf("highest wait at the cap: %v", d)
	}
	b.Reset()
	if d := b.Next(); d > time.Second {
		t.Fatalf("after Reset: %v", d)
	}
}

// Waits of agents restarted together spread out.
func TestBackoffJitterSpreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 50 {
		b := Backoff{Base: time.Second, Max: time.Minute}
		b.Next()
		d := b.Next()
		if d < time.Second || d > 2*time.Second {
			t.Fatalf("second wait %v outside [1s, 2s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 40 {
		t.Fatalf("only %d distinct waits of 50", len(seen))
	}
	for range 50 {
		if d := Jitter(time.Minute, 0.1); d < 54*time.Second || d > 66*time.Second {
			t.Fatalf("Jitter: %v", d)
		}
	}
}
