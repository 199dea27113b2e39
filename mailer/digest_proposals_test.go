// SPDX-License-Identifier: Apache-2.0

package mailer

import (
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// The digest counts the week's new proposals, and says nothing of them
// when there is none.
func TestDigestCountsNewProposals(t *testing.T) {
	now := time.Now()
	line := "new endpoints discovered by your agents: see `command discovered` or your account page"
	_, body := Composer{}.digest(store.Digest{Since: now.Add(-7 * 24 * time.Hour), NewProposals: 3}, now)
	if !strings.Contains(body, "3 "+line) {
		t.Errorf("with 3 new proposals:\n%s", body)
	}
	_, body = Composer{}.digest(store.Digest{Since: now.Add(-7 * 24 * time.Hour), NewProposals: 1}, now)
	if !strings.Contains(body, "1 new endpoint discovered by your agents") {
		t.Errorf("with 1 new proposal:\n%s", body)
	}
	_, body = Composer{}.digest(store.Digest{Since: now.Add(-7 * 24 * time.Hour)}, now)
	if strings.Contains(body, "discovered") {
		t.Errorf("with none:\n%s", body)
	}
}
