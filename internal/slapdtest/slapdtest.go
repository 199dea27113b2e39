// SPDX-License-Identifier: Apache-2.0

// Package slapdtest runs Debian's OpenLDAP server (slapd) on loopback
// for the tests of LDAP certificate stores (scripts/deps.sh test installs
// it).
package slapdtest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/certtest"
	"github.com/keychest/keychest-lined/internal/nsdtest"
)

// Base is the suffix of the directory; Agent and Password are the DN
// and password of the reader the tests bind as (not the root DN, whom
// slapd's limits do not bind).
const (
	Base     = "dc=corp,dc=example"
	Agent    = "cn=agent,dc=corp,dc=example"
	Password = "agent-password-0123"
	// SizeLimit is the most entries a search that is not paged returns.
	SizeLimit = 500
)

// Entry is a person below ou=people with certificates in
// userCertificate;binary (and a CA entry when CA is set: cACertificate).
type Entry struct {
	CN    string
	Certs [][]byte
	CA    bool
}

func ldif(entries []Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\no: Corp\n\n", Base)
	fmt.Fprintf(&b, "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n", Base)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: agent\nsn: agent\nuserPassword: %s\n\n", Agent, Password)
	for _, e := range entries {
		if e.CA {
			fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: applicationProcess\nobjectClass: pkiCA\ncn: %s\n", e.CN, Base, e.CN)
			for _, c := range e.Certs {
				fmt.Fprintf(&b, "cACertificate;binary:: %s\n", base64.StdEncoding.EncodeToString(c))
			}
		} else {
			fmt.Fprintf(&b, "dn: cn=%s,ou=people,%s\nobjectClass: inetOrgPerson\ncn: %s\nsn: %s\n", e.CN, Base, e.CN, e.CN)
			for _, c := range e.Certs {
				fmt.Fprintf(&b, "userCertificate;binary:: %s\n", base64.StdEncoding.EncodeToString(c))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Start loads entries into a fresh slapd on a free 127.0.0.1 port and
// returns its ldap:// URL. Anonymous binds read nothing; Agent reads all.
// slapd is required: make test installs it (scripts/deps.sh test).
func Start(t testing.TB, entries []Entry) string {
	t.Helper()
	return start(t, entries, nil).Plain
}

// TLS are the URLs of a slapd that speaks TLS: Plain (ldap://, where a
// simple bind needs StartTLS first) and LDAPS (ldaps://), and CA, the
// PEM of the CA that issued its certificate.
type TLS struct {
	Plain, LDAPS string
	CA           []byte
}

// StartTLS is Start with TLS: slapd serves a certificate for 127.0.0.1
// from a CA made here on an ldaps:// port, and offers StartTLS on its
// ldap:// port, where it refuses a simple bind without TLS.
func StartTLS(t testing.TB, entries []Entry) TLS {
	t.Helper()
	ca, err := certtest.NewCA("Corp LDAP CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(certtest.Lifetime(time.Now(), 90*24*time.Hour, 60*24*time.Hour, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	urls := start(t, entries, &cert)
	urls.CA = ca.PEM
	return urls
}

func start(t testing.TB, entries []Entry, cert *tls.Certificate) TLS {
	t.Helper()
	for _, bin := range []string{"/usr/sbin/slapd", "/usr/sbin/slapadd"} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing: run scripts/deps.sh test (as root) to install Debian's slapd", bin)
		}
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "db"), 0o700)
	cf := filepath.Join(dir, "slapd.conf")
	os.WriteFile(cf, []byte(config(t, dir, cert)), 0o600)
	data := filepath.Join(dir, "data.ldif")
	os.WriteFile(data, []byte(ldif(entries)), 0o600)
	if out, err := exec.Command("/usr/sbin/slapadd", "-q", "-f", cf, "-l", data).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	port := nsdtest.FreePort(t)
	urls := TLS{Plain: fmt.Sprintf("ldap://127.0.0.1:%d", port)}
	listen, ports := urls.Plain+"/", []int{port}
	if cert != nil {
		sport := nsdtest.FreePort(t)
		urls.LDAPS = fmt.Sprintf("ldaps://127.0.0.1:%d", sport)
		listen, ports = listen+" "+urls.LDAPS+"/", append(ports, sport)
	}
	cmd := exec.Command("/usr/sbin/slapd", "-f", cf, "-h", listen, "-d", "0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for _, p := range ports {
		waitListen(t, p, &out)
	}
	return urls
}

// config is slapd.conf for a server in dir, with TLS when cert is set.
func config(t testing.TB, dir string, cert *tls.Certificate) string {
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
`, dir)
	if cert != nil {
		key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
		os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
		conf += fmt.Sprintf("TLSCertificateFile %[1]s/tls.crt\nTLSCertificateKeyFile %[1]s/tls.key\n", dir)
	}
	conf += fmt.Sprintf(`database mdb
maxsize 268435456
suffix "%[1]s"
rootdn "cn=admin,%[1]s"
directory %[2]s/db
limits users size.soft=%[3]d size.hard=%[3]d size.pr=%[3]d size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by users read by * none
`, Base, dir, SizeLimit)
	if cert != nil {
		conf += "security simple_bind=64\n" // no password in clear text
	}
	return conf
}

// waitListen waits for slapd to listen on port.
func waitListen(t testing.TB, port int, out *bytes.Buffer) {
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd did not listen on port %d: %s", port, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// People are n people with a certificate each (the first one
// expiring in 5 days, the others in 60) and a CA entry.
func People(t testing.TB, n int) []Entry {
	t.Helper()
	now := time.Now()
	ca, err := certtest.NewCA("Corp Internal CA", now)
	if err != nil {
		t.Fatal(err)
	}
	out := []Entry{{CN: "corp-ca", Certs: [][]byte{ca.Cert.Raw}, CA: true}}
	for i := range n {
		left := 60 * 24 * time.Hour
		if i == 0 {
			left = 5 * 24 * time.Hour
		}
		c, err := ca.Issue(certtest.Lifetime(now, 365*24*time.Hour, left, fmt.Sprintf("user%04d.corp.example", i)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, Entry{CN: fmt.Sprintf("user%04d", i), Certs: [][]byte{c.Certificate[0]}})
	}
	return out
}
