// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"testing"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// The agent logs (AGT0433) the proposals auto_add left as proposals,
// when the service says it left any, and not otherwise.
func TestAutoAddLeftIsLogged(t *testing.T) {
	addr := startNSD(t, testZone(""))
	for _, left := range []int{0, 3} {
		a, dir, ds := discoverAgent(t, "zone corp.example server "+addr+" tsig agent-key:hmac-sha256:tsig.secret\nauto_add yes\n", nsdSecret)
		ds.left = left
		if err := a.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
		if seen, _ := entries(t, dir); seen[logcode.AgentDiscoverPosted] != 1 || seen[logcode.AgentAutoAddLeft] != min(left, 1) {
			t.Errorf("%d left: codes %v", left, seen)
		}
	}
}
