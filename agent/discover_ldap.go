// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// MaxLDAPCerts bounds what one LDAP source may yield (the service takes
// at most as many in one post).
const MaxLDAPCerts = 20_000

// ldapPageSize is the page of the paged search (RFC 2696).
const ldapPageSize = 500

// ldapCertAttrs are the attributes certificates are read from.
var ldapCertAttrs = []string{"userCertificate;binary", "cACertificate;binary", "userSMIMECertificate"}

// defaultLDAPFilter finds the entries that hold a certificate.
const defaultLDAPFilter = "(|(userCertificate=*)(cACertificate=*)(userSMIMECertificate=*))"

// LDAPCert is one certificate read from an LDAP store: where it was (its
// entry's DN and attribute) and the certificate itself.
type LDAPCert struct {
	DN          string    `json:"dn"`
	Attribute   string    `json:"attribute"`
	DER         []byte    `json:"der"`
	Fingerprint string    `json:"-"` // SHA-256, hex
	NotAfter    time.Time `json:"-"`
}

// ReadLDAP reads every certificate below src's base with a paged search,
// bound as src's bind DN (password from its file, relative to dir; its
// owner root or uid, the agent's user) when it has one. A value that is
// no X.509 certificate is skipped and counted. timeout bounds the dial
// and each request; ending ctx cuts the connection at once.
func ReadLDAP(ctx context.Context, src LDAPSource, dir string, uid int, timeout time.Duration) ([]LDAPCert, int, error) {
	conn, stop, err := dialLDAP(ctx, src, dir, uid, timeout)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	defer stop()
	if src.BindDN != "" {
		pw, err := readSecretFile(dir, uid, src.PasswordFile)
		if err != nil {
			return nil, 0, err
		}
		if err := conn.Bind(src.BindDN, pw); err != nil {
			return nil, 0, fmt.Errorf("ldap bind as %s: %w", src.BindDN, err)
		}
	}
	filter := src.Filter
	if filter == "" {
		filter = defaultLDAPFilter
	}
	req := ldap.NewSearchRequest(src.Base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, ldapCertAttrs, nil)
	res, err := conn.SearchWithPaging(req, ldapPageSize)
	if err != nil {
		return nil, 0, fmt.Errorf("ldap search below %s: %w", src.Base, err)
	}
	return ldapCerts(res.Entries)
}

// dialLDAP connects to src's server: ldaps:// or, with starttls, ldap://
// upgraded before anything else is sent; the server's certificate is
// checked against src's CA file, or the system's roots without one.
// Until stop is called, ending ctx closes the connection.
func dialLDAP(ctx context.Context, src LDAPSource, dir string, uid int, timeout time.Duration) (_ *ldap.Conn, stop func() bool, _ error) {
	u, err := url.Parse(src.URL)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	if src.CAFile != "" {
		if cfg.RootCAs, err = readCAFile(dir, uid, src.CAFile); err != nil {
			return nil, nil, err
		}
	}
	raw, err := dialLDAPConn(ctx, u, cfg, timeout)
	if err != nil {
		return nil, nil, fmt.Errorf("ldap %s: %w", src.URL, err)
	}
	stop = context.AfterFunc(ctx, func() { raw.Close() })
	conn := ldap.NewConn(raw, u.Scheme == "ldaps")
	conn.Start()
	conn.SetTimeout(timeout)
	if src.StartTLS {
		if err := conn.StartTLS(cfg); err != nil {
			stop()
			conn.Close()
			return nil, nil, fmt.Errorf("ldap %s: StartTLS: %w", src.URL, err)
		}
	}
	return conn, stop, nil
}

// dialLDAPConn opens the TCP connection of u (TLS from the start for
// ldaps://), giving up when ctx ends or after timeout.
func dialLDAPConn(ctx context.Context, u *url.URL, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := u.Port()
	if port == "" {
		port = map[string]string{"ldap": ldap.DefaultLdapPort, "ldaps": ldap.DefaultLdapsPort}[u.Scheme]
	}
	raw, err := new(net.Dialer).DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil || u.Scheme != "ldaps" {
		return raw, err
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// readCAFile reads PEM CA certificates (relative to dir unless
// absolute; the ownership rule checked on the file read).
func readCAFile(dir string, uid int, name string) (*x509.CertPool, error) {
	raw, err := readOwned(inDir(dir, name), uid, false)
	if err != nil {
		return nil, fmt.Errorf("ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		return nil, fmt.Errorf("ca file %s: no PEM certificate", inDir(dir, name))
	}
	return pool, nil
}

// inDir is name relative to dir unless absolute.
func inDir(dir, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

// ldapCerts parses the certificates of entries.
func ldapCerts(entries []*ldap.Entry) ([]LDAPCert, int, error) {
	var out []LDAPCert
	bad := 0
	for _, e := range entries {
		for _, a := range e.Attributes {
			for _, der := range a.ByteValues {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					bad++
					continue
				}
				sum := sha256.Sum256(der)
				out = append(out, LDAPCert{DN: e.DN, Attribute: strings.TrimSuffix(a.Name, ";binary"), DER: der,
					Fingerprint: hex.EncodeToString(sum[:]), NotAfter: c.NotAfter})
				if len(out) > MaxLDAPCerts {
					return nil, bad, fmt.Errorf("more than %d certificates", MaxLDAPCerts)
				}
			}
		}
	}
	return out, bad, nil
}

// readSecretFile reads the first line of a secret file (relative to dir
// unless absolute; the rule of secrets checked on the file read).
func readSecretFile(dir string, uid int, name string) (string, error) {
	p := inDir(dir, name)
	raw, err := readOwned(p, uid, true)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	s := strings.TrimRight(strings.SplitN(string(raw), "\n", 2)[0], "\r")
	if s == "" {
		return "", fmt.Errorf("secret file %s: empty", p)
	}
	return s, nil
}
