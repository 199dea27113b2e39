// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"net/netip"
	"strings"
	"testing"
)

const sampleAllow = `# the LDAP and web servers of the office
allow 10.20.0.0/16 443,636,8443 *.corp.example
allow 192.168.1.10/32 8000-8100   # the admin console, any name
allow fd00::/8 443 db.corp.example
allow 127.0.0.50/32 8443
`

func TestParseAllowAndPermits(t *testing.T) {
	a, err := ParseAllow(sampleAllow)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Rules) != 4 || a.Rules[0].Line != 2 || a.Rules[1].Line != 3 {
		t.Fatalf("rules: %+v", a.Rules)
	}
	cases := []struct {
		addr string
		port int
		name string
		ok   bool
		line int
	}{
		{"10.20.3.4", 636, "ldap.corp.example", true, 2},
		{"10.20.3.4", 636, "LDAP.Corp.Example.", true, 2},
		{"10.20.3.4", 636, "corp.example", false, 0}, // *.x is under x, not x
		{"10.20.3.4", 636, "ldap.corp.example.evil", false, 0},
		{"10.20.3.4", 636, "evilcorp.example", false, 0},
		{"10.20.3.4", 636, "", false, 0},                  // a pattern needs a name
		{"10.20.3.4", 22, "ldap.corp.example", false, 0},  // port not listed
		{"10.21.0.1", 443, "ldap.corp.example", false, 0}, // outside the CIDR
		{"192.168.1.10", 8000, "", true, 3},
		{"192.168.1.10", 8100, "anything", true, 3},
		{"192.168.1.10", 8101, "", false, 0},
		{"192.168.1.11", 8050, "", false, 0},
		{"fd12::1", 443, "db.corp.example", true, 4},
		{"fd12::1", 443, "web.corp.example", false, 0},
		{"::ffff:10.20.0.1", 443, "a.corp.example", true, 2}, // 4in6 is unmapped first
		{"127.0.0.50", 8443, "ldap.corp.example", true, 5},
		{"127.0.0.51", 8443, "ldap.corp.example", false, 0},
	}
	for _, c := range cases {
		ok, line := a.Permits(netip.MustParseAddr(c.addr), c.port, c.name)
		if ok != c.ok || line != c.line {
			t.Errorf("%s:%d %q: got %v (line %d), want %v (line %d)", c.addr, c.port, c.name, ok, line, c.ok, c.line)
		}
	}
	want := []string{"allow 10.20.0.0/16 443,636,8443 *.corp.example", "allow 192.168.1.10/32 8000-8100",
		"allow fd00::/8 443 db.corp.example", "allow 127.0.0.50/32 8443"}
	if got := a.Strings(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Strings: %q", got)
	}
}

// The zero policy and an empty or comment-only file allow nothing.
func TestDenyByDefault(t *testing.T) {
	for _, text := range []string{"", "\n\n", "# nothing yet\n   # still nothing\n"} {
		a, err := ParseAllow(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		for _, addr := range []string{"10.0.0.1", "127.0.0.1", "::1", "8.8.8.8"} {
			if ok, _ := a.Permits(netip.MustParseAddr(addr), 443, "x.example"); ok {
				t.Errorf("%q permits %s", text, addr)
			}
		}
	}
}

// Every one of these fails the whole file, with its line number.
func TestParseAllowRefuses(t *testing.T) {
	bad := []string{
		"deny 10.0.0.0/8 443",
		"allow",
		"allow 10.0.0.0/8",
		"allow 10.0.0.0/8 443 *.a.example extra",
		"allow 10.0.0.1 443",   // no prefix length
		"allow 10.0.0.1/8 443", // host bits set
		"allow 10.0.0.0/33 443",
		"allow fe80::%eth0/64 443", // zone
		"allow ten/8 443",
		"allow 10.0.0.0/8 0",
		"allow 10.0.0.0/8 65536",
		"allow 10.0.0.0/8 -443",
		"allow 10.0.0.0/8 443,",
		"allow 10.0.0.0/8 ,443",
		"allow 10.0.0.0/8 9000-8000",
		"allow 10.0.0.0/8 +443",
		"allow 10.0.0.0/8 any",
		"allow 10.0.0.0/8 443 *corp.example",
		"allow 10.0.0.0/8 443 **.corp.example",
		"allow 10.0.0.0/8 443 .corp.example",
		"allow 10.0.0.0/8 443 corp..example",
		"allow 10.0.0.0/8 443 corp_ex ample",
		"allow 10.0.0.0/8 443 a.*.example",
		"allow 10.0.0.0/8 443 corp.example/x",
		"ALLOW 10.0.0.0/8 443",
		"allow 10.0.0.0/8 443\n" + strings.Repeat("x", MaxAllowLine+10),
		strings.Repeat("allow 10.0.0.0/8 443\n", MaxAllowRules+1),
	}
	for _, text := range bad {
		a, err := ParseAllow("# ok line\n" + text + "\n")
		if err == nil {
			t.Errorf("%.60q parsed: %+v", text, a.Rules)
			continue
		}
		if !strings.Contains(err.Error(), "allow.conf line ") || len(a.Rules) != 0 {
			t.Errorf("%.60q: %v (rules %d)", text, err, len(a.Rules))
		}
	}
}
