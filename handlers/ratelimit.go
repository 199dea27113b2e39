// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"errors"
	"time"

	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// The per-address limits (new keys, claims per client per hour) are
// counted by the store, in PostgreSQL, so every server shares them (see
// internal/clientnet for what a client is). This file words their refusal.

// limited turns a store.LimitError into a 429 whose text, from format,
// names the client and says when to retry; other errors pass through.
func limited(err error, format string) error {
	var lim *store.LimitError
	if !errors.As(err, &lim) {
		return err
	}
	return lineproto.Errorf(lineproto.CodeTooMany, format, lim.From(), roundUp(lim.Wait))
}

// roundUp words a wait for a client: whole minutes, at least one.
func roundUp(d time.Duration) time.Duration {
	return max(time.Minute, d.Truncate(time.Minute)+time.Minute)
}
