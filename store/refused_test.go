// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keychest/keychest-lined/store"
)

// name returns a stored name of n characters ending in ".com", with a
// wildcard's "*." in front when wildcard is set.
func name(n int, wildcard bool) string {
	prefix := ""
	if wildcard {
		prefix = "*."
	}
	return prefix + strings.Repeat("x", n-len(prefix)-len(".com")) + ".com"
}

// The schema holds the same length rule as store.MaxDomainName, a
// wildcard's "*." included; a name past it is refused with its reason
// (ErrRefused, a 400), not a raw database error (a 500).
func TestDomainNameRule(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	k := createdKey(t, p, "length-key-0123456789")
	for _, n := range []int{store.MaxDomainName - 1, store.MaxDomainName, store.MaxDomainName + 1, store.MaxDomainName + 2} {
		for _, wildcard := range []bool{false, true} {
			d := store.NewDomain{Key: k, Name: name(n, wildcard), Port: 443, Wildcard: wildcard, MaxPerKey: 100}
			_, err := p.AddDomain(ctx, d)
			switch {
			case n <= store.MaxDomainName && err != nil:
				t.Errorf("%d characters (wildcard %v): %v", n, wildcard, err)
			case n > store.MaxDomainName && !errors.Is(err, store.ErrRefused):
				t.Errorf("%d characters (wildcard %v): %v, want ErrRefused", n, wildcard, err)
			case n > store.MaxDomainName && !strings.Contains(err.Error(), fmt.Sprintf("longer than %d", store.MaxDomainName)):
				t.Errorf("%d characters: reason %q", n, err)
			}
		}
	}
}

// A value the schema refuses fails its own command only, and is refused
// before it joins a batch: the others commit together, in one batch.
func TestRefusedAddFailsAlone(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	var adds []store.NewDomain
	for i := 0; i < 6; i++ {
		k := ref(fmt.Sprintf("batch-key-%d-0123456789", i))
		if err := p.CreateKey(ctx, store.NewKey{Key: k, IP: ip}); err != nil {
			t.Fatal(err)
		}
		adds = append(adds, store.NewDomain{Key: k, Name: fmt.Sprintf("d%d.example", i), Port: 443, MaxPerKey: 10})
	}
	adds[2].Name = name(store.MaxDomainName+1, false)
	adds[4].Port = 0
	results, errs, batches := p.AddTogether(adds)
	for i := range adds {
		switch i {
		case 2, 4:
			if !errors.Is(errs[i], store.ErrRefused) {
				t.Errorf("add %d: %v, want ErrRefused", i, errs[i])
			}
		default:
			if errs[i] != nil || results[i].Outcome != store.DomainAdded {
				t.Errorf("add %d: %+v, %v", i, results[i], errs[i])
			}
		}
	}
	if batches != 1 {
		t.Errorf("%d batches for 6 adds with 2 refused, want 1", batches)
	}
	for i, d := range adds {
		list, err := p.KeyDomains(ctx, d.Key)
		if want := map[bool]int{true: 0, false: 1}[i == 2 || i == 4]; err != nil || len(list) != want {
			t.Errorf("key %d holds %d domains (%v), want %d", i, len(list), err, want)
		}
	}
}

// A value that fails the adds' set-based statement (here a NUL byte, which
// no text column holds) fails its own add only: the batch goes again in
// halves until it is alone, and every other add commits.
func TestBadRowInSetFailsAlone(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	k := createdKey(t, p, "set-key-0123456789")
	var adds []store.NewDomain
	for i := 0; i < 16; i++ {
		adds = append(adds, store.NewDomain{Key: k, Name: fmt.Sprintf("d%d.example", i), Port: 443, MaxPerKey: 100})
	}
	adds[11].Name = "bad\x00.example"
	results, errs, batches := p.AddTogether(adds)
	for i := range adds {
		switch {
		case i == 11 && (errs[i] == nil || errors.Is(errs[i], store.ErrUnavailable)):
			t.Errorf("bad add: %v, want its statement's error", errs[i])
		case i != 11 && (errs[i] != nil || results[i].Outcome != store.DomainAdded):
			t.Errorf("add %d: %+v, %v", i, results[i], errs[i])
		}
	}
	// 16, 8, 4, 2, 1 that fail, and the other halves: 8, 4, 2, 1.
	if batches != 9 {
		t.Errorf("%d batches, want 9", batches)
	}
	if list, err := p.KeyDomains(ctx, k); err != nil || len(list) != 15 {
		t.Errorf("%d domains stored (%v), want 15", len(list), err)
	}
}
