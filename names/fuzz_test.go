// SPDX-License-Identifier: Apache-2.0

package names

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseDomain: what ParseDomain takes is a name it takes again
// unchanged (with its port), in lowercase ASCII within the length rule;
// and it never panics.
func FuzzParseDomain(f *testing.F) {
	for _, s := range []string{"example.com", "https://Example.COM.:8443/", "*.bücher.example", "a..b", "1.2.3.4", "[::1]:443", "x@y.z", strings.Repeat("a.", 130) + "com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		d, err := ParseDomain(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: a refusal without a reason", raw)
			}
			return
		}
		if len(d.Name) > MaxDomainName || strings.ToLower(d.Name) != d.Name || d.Wildcard != strings.HasPrefix(d.Name, "*.") {
			t.Fatalf("%q: %+v", raw, d)
		}
		for i := 0; i < len(d.Name); i++ {
			if d.Name[i] >= 0x80 {
				t.Fatalf("%q: not ASCII: %q", raw, d.Name)
			}
		}
		again, err := ParseDomain(d.Name + ":" + strconv.Itoa(d.Port))
		if err != nil || again != d {
			t.Fatalf("%q gave %+v, which parses as %+v, %v", raw, d, again, err)
		}
	})
}
