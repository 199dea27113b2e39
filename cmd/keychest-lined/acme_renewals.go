// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/acme"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/store"
	"github.com/keychest/keychest-lined/web"
)

// checkRenewals runs the store's renewal check (docs/amp.md) at once and
// then every acme.RenewalCheckEvery until ctx ends. Several servers on one database may
// run it: a finding opens once whoever sees it first.
func checkRenewals(ctx context.Context, db *store.Postgres, log zerolog.Logger) {
	tick := time.NewTicker(acme.RenewalCheckEvery)
	defer tick.Stop()
	for {
		changes, err := db.CheckRenewals(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			log.Warn().Str("code", logcode.RenewalCheckFailed).Time("event_time", time.Now()).Err(err).Msg("ACME renewal check failed; tried again later")
		}
		web.LogACMEChanges(log, logcode.RenewalFinding, changes)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
