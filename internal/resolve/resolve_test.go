// SPDX-License-Identifier: Apache-2.0

package resolve

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/keychest/keychest-lined/internal/certtest"
)

// No server named: the system resolver, as before any flag existed.
func TestNewWithoutServerIsTheSystemResolver(t *testing.T) {
	if r := New(""); r != net.DefaultResolver {
		t.Fatalf("New(\"\") = %#v, want net.DefaultResolver", r)
	}
}

// A server named: its answers, and its refusal of a name it does not know.
func TestNewAsksOnlyTheNamedServer(t *testing.T) {
	dns, err := certtest.ServeDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	want := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	dns.Set("named.test", want...)
	r := New(dns.Addr())
	got, err := r.LookupNetIP(context.Background(), "ip4", "named.test")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, netip.Addr.Compare)
	if !slices.Equal(got, want) {
		t.Fatalf("named.test = %v, want %v", got, want)
	}
	if a, err := r.LookupNetIP(context.Background(), "ip4", "unknown.test"); err == nil {
		t.Fatalf("unknown.test resolved to %v", a)
	}
}
