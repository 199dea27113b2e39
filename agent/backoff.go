// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces retries: the n-th wait is drawn uniformly from
// [d/2, d], d = Base·2^n capped at Max ("equal jitter"), so that agents
// restarted together do not reconnect together, and a wait is never
// shorter than half its step.
type Backoff struct {
	Base, Max time.Duration
	// Rand draws a float in [0,1); nil: math/rand/v2.
	Rand func() float64
	n    int
}

// Next returns the next wait and counts the attempt.
func (b *Backoff) Next() time.Duration {
	d := b.Base
	for i := 0; i < b.n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	b.n++
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	return d/2 + time.Duration(r()*float64(d/2))
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.n = 0 }

// Jitter returns d spread by ±frac (0.1: ±10%), for heartbeats.
func Jitter(d time.Duration, frac float64) time.Duration {
	return d + time.Duration((rand.Float64()*2-1)*frac*float64(d))
}
