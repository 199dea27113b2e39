// SPDX-License-Identifier: Apache-2.0

package web

import (
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// The note under a domain without a certificate says why: not probed yet,
// or probed and failed (with its class), pending, or a wildcard.
func TestStateNote(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		s    store.CertStatus
		want string
	}{
		{store.CertStatus{State: "unknown"}, "Not probed yet: the first check follows within a minute."},
		{store.CertStatus{State: "unknown", Checked: &now, Class: "timeout"},
			"No certificate seen yet: the last check failed (timeout). The state is unknown until a check sees a certificate."},
		{store.CertStatus{State: "unknown", Checked: &now},
			"No certificate seen yet: the last check failed (no address to try). The state is unknown until a check sees a certificate."},
		{store.CertStatus{State: "pending"}, "Pending: nothing is watched until the account is confirmed."},
		{store.CertStatus{State: "ok", Checked: &now}, ""},
		{store.CertStatus{State: "critical", Checked: &now, Class: "refused"}, ""},
	} {
		if got := stateNote(c.s); got != c.want {
			t.Errorf("%+v: %q, want %q", c.s, got, c.want)
		}
	}
}
