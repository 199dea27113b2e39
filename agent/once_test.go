// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"testing"
	"time"
)

// once stops taking jobs a fifth of --for before its deadline.
func TestTakeUntil(t *testing.T) {
	end := time.Date(2026, 12, 7, 12, 0, 50, 0, time.UTC)
	for _, c := range []struct {
		passFor time.Duration
		want    time.Time
	}{
		{50 * time.Second, end.Add(-10 * time.Second)},
		{5 * time.Second, end.Add(-time.Second)},
		{0, end},
	} {
		if got := takeUntil(end, c.passFor); !got.Equal(c.want) {
			t.Errorf("--for %v: takes until %v, want %v", c.passFor, got, c.want)
		}
	}
}
