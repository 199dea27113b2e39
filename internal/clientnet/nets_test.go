// SPDX-License-Identifier: Apache-2.0

package clientnet

import "testing"

// Networks separated by commas or spaces, bare addresses as /32 or /128;
// an empty list is none, and a name is refused.
func TestParseNets(t *testing.T) {
	got, err := ParseNets(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,")
	if err != nil || len(got) != 3 || got[1].String() != "192.0.2.7/32" || got[2].String() != "2001:db8::/32" {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := ParseNets(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	if _, err := ParseNets("10.0.0.0/8,proxy.example"); err == nil {
		t.Fatal("a name was accepted")
	}
}
