// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/internal/logcode"
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
	certs, bad, err := ReadLDAP(context.Background(), src, dir, os.Getuid(), 10*time.Second)
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
	if certs, _, err := ReadLDAP(context.Background(), LDAPSource{URL: url, Base: slapdtest.Base}, dir, os.Getuid(), 10*time.Second); len(certs) != 0 {
		t.Errorf("anonymous read %d certificates (%v)", len(certs), err)
	}
	os.WriteFile(filepath.Join(dir, "wrong.pw"), []byte("nope\n"), 0o600)
	src.PasswordFile = "wrong.pw"
	if _, _, err := ReadLDAP(context.Background(), src, dir, os.Getuid(), 10*time.Second); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("wrong password: %v", err)
	}
}

// ldapTLS is a slapd speaking TLS; a password file and its CA's PEM
// (ca.pem) are in dir.
func ldapTLS(t *testing.T, dir string) slapdtest.TLS {
	t.Helper()
	urls := slapdtest.StartTLS(t, ldapEntries(t, 3))
	os.WriteFile(filepath.Join(dir, "ldap.pw"), []byte(slapdtest.Password+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ca.pem"), urls.CA, 0o600)
	return urls
}

// ldaps:// and StartTLS read the store with the server's CA from a "ca"
// file; on the same server, a bind without TLS is refused (slapd asks
// for confidentiality), so StartTLS did encrypt.
func TestReadLDAPOverTLS(t *testing.T) {
	dir := t.TempDir()
	urls := ldapTLS(t, dir)
	for _, src := range []LDAPSource{
		{URL: urls.LDAPS, CAFile: "ca.pem"},
		{URL: urls.Plain, StartTLS: true, CAFile: filepath.Join(dir, "ca.pem")},
	} {
		src.Base, src.BindDN, src.PasswordFile = slapdtest.Base, slapdtest.Agent, "ldap.pw"
		if certs, _, err := ReadLDAP(context.Background(), src, dir, os.Getuid(), 10*time.Second); err != nil || len(certs) != 4 {
			t.Errorf("%s starttls=%v: %d certificates, %v", src.URL, src.StartTLS, len(certs), err)
		}
	}
	plain := LDAPSource{URL: urls.Plain, Base: slapdtest.Base, BindDN: slapdtest.Agent, PasswordFile: "ldap.pw"}
	if _, _, err := ReadLDAP(context.Background(), plain, dir, os.Getuid(), 10*time.Second); !ldap.IsErrorWithCode(err, ldap.LDAPResultConfidentialityRequired) {
		t.Errorf("a bind without TLS: %v", err)
	}
}

// A server whose certificate the configured CA did not sign (here: the
// system's roots, and another CA) is not read: AGT0532, nothing posted,
// the agent carries on; the password is never sent (the bind comes after
// the handshake) nor logged.
func TestLDAPWrongCAIsRefused(t *testing.T) {
	other, err := certtest.NewCA("Someone Else", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, opts, host string }{
		{"ldaps, system roots", "", ""},
		{"ldaps, other CA", " ca other.pem", ""},
		{"starttls, other CA", " starttls ca other.pem", ""},
		{"ldaps, right CA, wrong host name", " ca ca.pem", "localhost"}, // the certificate is for 127.0.0.1
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "tls")
			os.Mkdir(dir, 0o700)
			urls := ldapTLS(t, dir)
			url := urls.LDAPS
			if strings.Contains(c.opts, "starttls") {
				url = urls.Plain
			}
			if c.host != "" {
				url = strings.Replace(url, "127.0.0.1", c.host, 1)
			}
			opts := strings.NewReplacer("other.pem", filepath.Join(dir, "other.pem"), "ca.pem", filepath.Join(dir, "ca.pem")).Replace(c.opts)
			line := "ldap " + url + " base " + slapdtest.Base + " bind " + slapdtest.Agent + " " + filepath.Join(dir, "ldap.pw") + opts + "\n"
			os.WriteFile(filepath.Join(dir, "other.pem"), other.PEM, 0o600)
			a, adir, ds := discoverAgent(t, line, nsdSecret)
			if err := a.Once(context.Background()); err != nil {
				t.Fatal(err)
			}
			seen, raw := entries(t, adir)
			if seen[logcode.AgentLDAPFailed] != 1 || seen[logcode.AgentLDAPRead] != 0 || len(ds.posts) != 0 {
				t.Errorf("codes %v, %d posts:\n%s", seen, len(ds.posts), raw)
			}
			if !strings.Contains(raw, "certificate") || strings.Contains(raw, slapdtest.Password) ||
				(c.host != "" && !strings.Contains(raw, "wanted to match "+c.host)) {
				t.Errorf("the log: %s", raw)
			}
		})
	}
}
