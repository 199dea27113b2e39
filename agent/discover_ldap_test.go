// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keychest/keychest-lined/internal/slapdtest"
)

func ldapEntries(t testing.TB, n int) []slapdtest.Entry { return slapdtest.People(t, n) }

// A paged search reads all of 2,000 entries from Debian's slapd, where a
// search that is not paged stops at its size limit.
func TestReadLDAPPaged(t *testing.T) {
	url := slapdtest.Start(t, ldapEntries(t, 2000))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ldap.pw"), []byte(slapdtest.Password+"\n"), 0o600)
	src := LDAPSource{URL: url, Base: slapdtest.Base, BindDN: slapdtest.Agent, PasswordFile: "ldap.pw"}
	certs, bad, err := ReadLDAP(src, dir, 10*time.Second)
	if err != nil || bad != 0 || len(certs) != 2001 {
		t.Fatalf("read %d certificates (%d bad): %v", len(certs), bad, err)
	}
	soon, cas := 0, 0
	for _, c := range certs {
		if time.Until(c.NotAfter) < 6*24*time.Hour {
			soon++
			if c.DN != "cn=user0000,ou=people,"+slapdtest.Base || c.Attribute != "userCertificate" || len(c.Fingerprint) != 64 {
				t.Errorf("the expiring one: %+v", c)
			}
		}
		if c.Attribute == "cACertificate" {
			cas++
		}
	}
	if soon != 1 || cas != 1 {
		t.Errorf("%d expiring, %d CA certificates", soon, cas)
	}
	// Without paging, the same reader gets at most the size limit.
	conn, err := ldap.DialURL(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Bind(slapdtest.Agent, slapdtest.Password)
	_, err = conn.Search(ldap.NewSearchRequest(slapdtest.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		defaultLDAPFilter, []string{"cn"}, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Errorf("a search without paging: %v", err)
	}
	// Anonymous reads nothing; a wrong password binds not.
	if certs, _, err := ReadLDAP(LDAPSource{URL: url, Base: slapdtest.Base}, dir, 10*time.Second); len(certs) != 0 {
		t.Errorf("anonymous read %d certificates (%v)", len(certs), err)
	}
	os.WriteFile(filepath.Join(dir, "wrong.pw"), []byte("nope\n"), 0o600)
	src.PasswordFile = "wrong.pw"
	if _, _, err := ReadLDAP(src, dir, 10*time.Second); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("wrong password: %v", err)
	}
}
