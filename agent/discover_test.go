// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestParseDiscover(t *testing.T) {
	text := `# the office's zones
zone corp.example server 10.20.0.53:53 tsig agent-key:hmac-sha256:tsig.secret ports 443,636
zone Lab.Example. server ns.lab.example:5353   # no key, default port
ldap ldaps://ldap.corp.example base "ou=PKI, dc=corp,dc=example" bind cn=agent,dc=corp,dc=example /etc/keychest-agent/ldap.pw filter (objectClass=pkiUser)
ldap ldap://127.0.0.1:389 base dc=x
ldap ldap://ldap.corp.example base dc=x starttls ca ldap-ca.pem
auto_add yes
`
	d, err := ParseDiscover(text)
	if err != nil {
		t.Fatal(err)
	}
	want := Discover{
		Zones: []ZoneSource{
			{Zone: "corp.example.", Server: "10.20.0.53:53", Ports: []int{443, 636}, Line: 2,
				TSIG: &TSIG{Name: "agent-key.", Alg: dns.HmacSHA256, SecretFile: "tsig.secret"}},
			{Zone: "lab.example.", Server: "ns.lab.example:5353", Ports: []int{443}, Line: 3},
		},
		LDAP: []LDAPSource{
			{URL: "ldaps://ldap.corp.example", Base: "ou=PKI, dc=corp,dc=example", BindDN: "cn=agent,dc=corp,dc=example",
				PasswordFile: "/etc/keychest-agent/ldap.pw", Filter: "(objectClass=pkiUser)", Line: 4},
			{URL: "ldap://127.0.0.1:389", Base: "dc=x", Line: 5},
			{URL: "ldap://ldap.corp.example", Base: "dc=x", StartTLS: true, CAFile: "ldap-ca.pem", Line: 6},
		},
		AutoAdd: true,
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got  %+v\nwant %+v", d, want)
	}
	got := strings.Join(d.Strings(), "\n")
	if strings.Contains(got, "secret") || strings.Contains(got, "ldap.pw") || !strings.Contains(got, "zone corp.example. server 10.20.0.53:53 tsig agent-key. ports 443,636") ||
		!strings.Contains(got, "ldap ldap://ldap.corp.example base dc=x starttls ca ldap-ca.pem") {
		t.Errorf("Strings: %s", got)
	}
	if d, err := ParseDiscover("# nothing\n\n"); err != nil || len(d.Zones)+len(d.LDAP) != 0 || d.AutoAdd {
		t.Errorf("empty file: %+v %v", d, err)
	}
}

func TestParseDiscoverRefuses(t *testing.T) {
	bad := []string{
		"zone corp.example",                           // no server
		"zone corp.example server 10.0.0.1",           // no port
		"zone corp.example server 10.0.0.1:0",         // port 0
		"zone corp.example server :53",                // no host
		"zone corp.example host 10.0.0.1:53",          // not "server"
		"zone *.corp.example server 10.0.0.1:53",      // wildcard zone
		"zone corp..example server 10.0.0.1:53",       // empty label
		"zone corp.example server 10.0.0.1:53 tsig k", // tsig without ALG:FILE
		"zone corp.example server 10.0.0.1:53 tsig k:hmac-md4:f",
		"zone corp.example server 10.0.0.1:53 tsig k:hmac-sha256:",
		"zone corp.example server 10.0.0.1:53 ports",   // option without value
		"zone corp.example server 10.0.0.1:53 ports 0", // port 0
		"zone corp.example server 10.0.0.1:53 ports 443-500",
		"zone corp.example server 10.0.0.1:53 ports 443 ports 636", // twice
		"zone corp.example server 10.0.0.1:53 colour blue",
		"ldap http://x base dc=x",           // not ldap://
		"ldap ldap:// base dc=x",            // no host
		"ldap ldap://u:p@x base dc=x",       // credentials in the URL
		"ldap ldap://x dc=x",                // no "base"
		"ldap ldap://x base nodn",           // not a DN
		"ldap ldap://x base dc=x bind dc=y", // bind without password file
		"ldap ldap://x base dc=x bind nodn f",
		"ldap ldap://x base dc=x filter objectClass=x",      // unparenthesised
		"ldap ldap://x base dc=x filter (a=b))(",            // unbalanced
		"ldap ldap://x base dc=x filter (a=b) filter (c=d)", // twice
		"ldap ldaps://x base dc=x starttls",                 // ldaps is TLS already
		"ldap ldap://x base dc=x starttls starttls",         // twice
		"ldap ldap://x base dc=x ca",                        // ca without a file
		"ldap ldap://x base dc=x ca a.pem ca b.pem",         // twice
		`ldap ldap://x base "dc=x`,                          // unterminated quote
		`ldap ldap://x base "dc=x"y`,                        // text after a quote
		"auto_add",
		"auto_add maybe",
		"allow 10.0.0.0/8 443",
		"zone corp.example server 10.0.0.1:53\nzone x server", // a bad second line fails the file
		strings.Repeat("x", MaxAllowLine+1),
		strings.Repeat("zone a.example server 10.0.0.1:53\n", MaxDiscoverSources+1),
	}
	for _, s := range bad {
		if d, err := ParseDiscover(s); err == nil {
			t.Errorf("%.60q: accepted as %+v", s, d)
		} else if !strings.Contains(err.Error(), "discover.conf line ") {
			t.Errorf("%.60q: error without its line: %v", s, err)
		}
	}
}

// A bind over ldap:// without starttls would send the password in
// clear: refused, but on loopback.
func TestParseDiscoverClearBind(t *testing.T) {
	for line, ok := range map[string]bool{
		"ldap ldap://ldap.corp.example base dc=x bind cn=a,dc=x ldap.pw":          false,
		"ldap ldap://10.0.0.5:389 base dc=x bind cn=a,dc=x ldap.pw":               false,
		"ldap ldap://ldap.corp.example base dc=x bind cn=a,dc=x ldap.pw starttls": true,
		"ldap ldaps://ldap.corp.example base dc=x bind cn=a,dc=x ldap.pw":         true,
		"ldap ldap://ldap.corp.example base dc=x":                                 true, // anonymous: no password
		"ldap ldap://127.0.0.1:389 base dc=x bind cn=a,dc=x ldap.pw":              true,
		"ldap ldap://[::1]:389 base dc=x bind cn=a,dc=x ldap.pw":                  true,
		"ldap ldap://localhost base dc=x bind cn=a,dc=x ldap.pw":                  true,
	} {
		_, err := ParseDiscover(line)
		if ok != (err == nil) || (!ok && !strings.Contains(err.Error(), "in clear")) {
			t.Errorf("%s: %v", line, err)
		}
	}
}
