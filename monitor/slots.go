// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"net/netip"
	"sync"
)

// slots bounds how many holders of one key may run at once; keys with no
// holder cost nothing. One key (the zero address) gives a plain semaphore.
type slots struct {
	per int
	mu  sync.Mutex
	m   map[netip.Addr]chan struct{}
	use map[netip.Addr]int
}

func newSlots(per int) *slots {
	return &slots{per: max(per, 1), m: map[netip.Addr]chan struct{}{}, use: map[netip.Addr]int{}}
}

// acquire waits for a slot of key, or for ctx to end.
func (s *slots) acquire(ctx context.Context, key netip.Addr) (func(), error) {
	s.mu.Lock()
	ch, ok := s.m[key]
	if !ok {
		ch = make(chan struct{}, s.per)
		s.m[key] = ch
	}
	s.use[key]++
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch; s.done(key) }, nil
	case <-ctx.Done():
		s.done(key)
		return nil, ctx.Err()
	}
}

// done forgets key once nobody holds or waits for it.
func (s *slots) done(key netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.use[key]--; s.use[key] == 0 {
		delete(s.use, key)
		delete(s.m, key)
	}
}
