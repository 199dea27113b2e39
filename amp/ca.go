// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/internal/atomicfile"
)

// File names of the root in the -e folder.
const (
	rootCertFile = "ca.pem"
	rootKeyFile  = "ca.key"
)

// Lifetimes of the root and of the leaves it mints.
const (
	rootLifetime = 10 * 365 * 24 * time.Hour
	leafLifetime = 7 * 24 * time.Hour
)

// maxLeaves bounds the cache of minted leaves.
const maxLeaves = 64

// noMatch is the one permitted e-mail and URI subtree of the root: names
// under .invalid (RFC 6761), which no real address or URI has, so the
// root cannot sign for any e-mail address or URI.
const noMatch = ".invalid"

// ErrOutOfScope is the error of a leaf asked for a name or address the
// proxy does not answer for.
var ErrOutOfScope = errors.New("not a name the proxy intercepts or answers to")

// CA is the proxy's own root and the leaves it mints for intercepted hosts.
// The root is name-constrained: it can only sign for the names it permits,
// for TLS servers only. Leaves are minted only for the names and addresses
// of the scope, and at most maxLeaves are kept.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	pem     []byte
	leafKey *ecdsa.PrivateKey
	scope   Scope

	mu     sync.Mutex
	leaves map[string]*cachedLeaf
	uses   uint64 // a clock for the least recently used leaf
}

// cachedLeaf is a minted leaf and when it was last handed out.
type cachedLeaf struct {
	cert *tls.Certificate
	used uint64
}

// Scope is what the root may sign for: DNS names (each permits itself and
// its subdomains) and IP addresses.
type Scope struct {
	Names []string
	IPs   []net.IP
}

// LoadCA reads the root from dir, or creates it there (key mode 0600) when
// there is none, or when the one there does not cover scope. created says a
// new root was written: clients must fetch it again.
func LoadCA(dir string, scope Scope) (ca *CA, created bool, err error) {
	cert, key, err := readRoot(dir)
	if err == nil && covers(cert, scope) {
		return newCA(cert, key, scope)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if cert, key, err = createRoot(dir, scope); err != nil {
		return nil, false, err
	}
	ca, _, err = newCA(cert, key, scope)
	return ca, true, err
}

func newCA(cert *x509.Certificate, key *ecdsa.PrivateKey, scope Scope) (*CA, bool, error) {
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	return &CA{cert: cert, key: key, leafKey: leafKey, scope: scope, leaves: map[string]*cachedLeaf{},
		pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, false, nil
}

// PEM returns the root certificate in PEM form.
func (c *CA) PEM() []byte { return c.pem }

// Root returns the root certificate.
func (c *CA) Root() *x509.Certificate { return c.cert }

func readRoot(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, rootCertFile))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, rootKeyFile))
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("root in %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("root key in %s is not ECDSA", dir)
	}
	return pair.Leaf, key, nil
}

// covers says whether the root's name constraints permit every name and IP
// of scope, and whether it is a root of this version: serverAuth only, no
// e-mail address or URI permitted. A root made by an earlier version is
// not, and is replaced.
func covers(root *x509.Certificate, scope Scope) bool {
	if !slices.Equal(root.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || len(root.UnknownExtKeyUsage) > 0 ||
		!slices.Equal(root.PermittedEmailAddresses, []string{noMatch}) || !slices.Equal(root.PermittedURIDomains, []string{noMatch}) {
		return false
	}
	for _, n := range scope.Names {
		if !slices.Contains(root.PermittedDNSDomains, strings.ToLower(n)) {
			return false
		}
	}
	for _, ip := range scope.IPs {
		if !slices.ContainsFunc(root.PermittedIPRanges, func(r *net.IPNet) bool { return r.Contains(ip) }) {
			return false
		}
	}
	return root.PermittedDNSDomainsCritical && time.Until(root.NotAfter) > 30*24*time.Hour
}

func createRoot(dir string, scope Scope) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:                serial(),
		Subject:                     pkix.Name{CommonName: "keychest-amp root", Organization: []string{"keychest-amp"}},
		NotBefore:                   time.Now().Add(-time.Hour),
		NotAfter:                    time.Now().Add(rootLifetime),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:                 []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, // TLS servers only
		PermittedEmailAddresses:     []string{noMatch},                              // no e-mail address
		PermittedURIDomains:         []string{noMatch},                              // no URI
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true,
	}
	for _, n := range scope.Names {
		tmpl.PermittedDNSDomains = append(tmpl.PermittedDNSDomains, strings.ToLower(n))
	}
	for _, ip := range scope.IPs {
		tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, hostNet(ip))
	}
	if len(tmpl.PermittedIPRanges) == 0 {
		// No IP permitted: exclude them all, or any IP would pass.
		tmpl.ExcludedIPRanges = []*net.IPNet{{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, rootKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, nil, err
	}
	return cert, key, atomicfile.Write(filepath.Join(dir, rootCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func hostNet(ip net.IP) *net.IPNet {
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip.To16(), Mask: net.CIDRMask(128, 128)}
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// Leaf returns a certificate for host (a DNS name or an IP address of the
// scope) signed by the root, minting it on first use and again when it
// nears expiry. A host off the scope gets ErrOutOfScope. The cache keeps
// the maxLeaves most recently used leaves.
func (c *CA) Leaf(host string) (*tls.Certificate, error) {
	host = canonicalHost(host)
	if !c.inScope(host) {
		return nil, fmt.Errorf("%q: %w", host, ErrOutOfScope)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uses++
	if l, ok := c.leaves[host]; ok && time.Until(l.cert.Leaf.NotAfter) > leafLifetime/2 {
		l.used = c.uses
		return l.cert, nil
	}
	cert, err := c.mint(host)
	if err != nil {
		return nil, err
	}
	if _, ok := c.leaves[host]; !ok && len(c.leaves) >= maxLeaves {
		c.evictOldest()
	}
	c.leaves[host] = &cachedLeaf{cert: cert, used: c.uses}
	return cert, nil
}

// inScope says whether host is one of the scope's names or addresses.
func (c *CA) inScope(host string) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		return slices.ContainsFunc(c.scope.IPs, func(s net.IP) bool {
			a, ok := netip.AddrFromSlice(s)
			return ok && a.Unmap() == ip.Unmap()
		})
	}
	return slices.ContainsFunc(c.scope.Names, func(n string) bool { return strings.EqualFold(n, host) })
}

// evictOldest drops the least recently used leaf; under c.mu.
func (c *CA) evictOldest() {
	oldest := ""
	for h, l := range c.leaves {
		if oldest == "" || l.used < c.leaves[oldest].used {
			oldest = h
		}
	}
	delete(c.leaves, oldest)
}

// cached is the number of leaves in the cache.
func (c *CA) cached() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.leaves)
}

// mint signs a new leaf for host, a TLS server certificate.
func (c *CA) mint(host string) (*tls.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		// A DNS name goes in the CN too; an IP must not (OpenSSL checks
		// a CN that looks like a name against the DNS constraints).
		tmpl.Subject.CommonName = host
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &c.leafKey.PublicKey, c.key)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: c.leafKey, Leaf: leaf}, nil
}
