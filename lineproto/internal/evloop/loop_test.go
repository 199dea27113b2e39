// SPDX-License-Identifier: Apache-2.0

package evloop

import "testing"

func TestListenURLs(t *testing.T) {
	got := listenURLs("0.0.0.0:10023, [::]:10023,:10023,localhost:1,[::ffff:127.0.0.1]:2")
	want := []string{"tcp4://0.0.0.0:10023", "tcp6://[::]:10023", "tcp://:10023", "tcp://localhost:1", "tcp6://[::ffff:127.0.0.1]:2"}
	if len(got) != len(want) {
		t.Fatalf("%q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: %q, want %q", i, got[i], want[i])
		}
	}
}
