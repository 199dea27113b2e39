// SPDX-License-Identifier: Apache-2.0

package web

import (
	"testing"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/store"
)

// The agent asks for a claim mail again only once the link the server
// mailed has expired, its own clock and the server's a little apart: its
// wait (agent.ClaimMailEvery) outlasts the link's lifetime
// (store.TokenLifetime), which the agent cannot import.
func TestClaimMailEveryOutlastsTheLink(t *testing.T) {
	if agent.ClaimMailEvery <= store.TokenLifetime {
		t.Fatalf("agent.ClaimMailEvery %v, the link lives %v: no margin for the clocks", agent.ClaimMailEvery, store.TokenLifetime)
	}
}
