// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// A stranger who claims a key for an address learns nothing of whether
// the address has an account, unconfirmed or confirmed: the claim, and
// what the key can do next (add, status, cert, check), answer in the same
// words for all three.
func TestClaimSaysNothingOfTheAccount(t *testing.T) {
	e := newEnv(t, 1000)
	dormant := e.do(t, "command apikey").Data
	expect(t, e.do(t, "command claim apikey "+dormant+" email dormant@example.com"), 200, "claimed")
	owner := e.do(t, "command apikey").Data
	expect(t, e.do(t, "command claim apikey "+owner+" email owner@example.com"), 200, "claimed")
	if _, err := e.db.Exec(t.Context(), `UPDATE accounts SET confirmed_at = now() WHERE email = 'owner@example.com'`); err != nil {
		t.Fatal(err)
	}
	created := regexp.MustCompile(`created=\S+`)
	for i, kind := range []string{"server", "client"} {
		var seen []string
		for _, email := range []string{fmt.Sprintf("new%d@example.com", i), "dormant@example.com", "owner@example.com"} {
			key := fmt.Sprintf("Stranger-Key-%d-%s", i, strings.Split(email, "@")[0])
			if kind == "server" {
				key = e.do(t, "command apikey").Data
			}
			var replies strings.Builder
			for _, line := range []string{"command claim apikey K email E", "command add domain stranger.example apikey K",
				"command status apikey K", "command cert domain stranger.example apikey K",
				"command check domain stranger.example apikey K", "command list apikey K"} {
				line = strings.NewReplacer("K", key, "E", email).Replace(line)
				r := e.do(t, line)
				text := strings.NewReplacer(email, "E", key[:8], "K").Replace(r.Data + " | " + fmt.Sprint(r.Code) + " " + r.Text)
				fmt.Fprintln(&replies, created.ReplaceAllString(text, "created=T"))
			}
			seen = append(seen, replies.String())
		}
		if seen[0] != seen[1] || seen[0] != seen[2] {
			t.Errorf("%s keys: replies differ by account:\nnew:\n%s\nunconfirmed:\n%s\nconfirmed:\n%s", kind, seen[0], seen[1], seen[2])
		}
	}
}
