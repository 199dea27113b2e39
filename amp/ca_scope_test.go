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
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// signByRoot signs tmpl with the root's key, as a thief of ca.key could.
func signByRoot(t *testing.T, ca *CA, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial(), time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert
}

// The root signs TLS servers only: an e-mail protection certificate, or
// one with a URI, signed by its key, does not verify.
func TestRootSignsTLSServersOnly(t *testing.T) {
	ca, _, err := LoadCA(t.TempDir(), Scope{Names: []string{"acme-v02.api.letsencrypt.org"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ca.Root().ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("root EKU %v, want serverAuth only", ca.Root().ExtKeyUsage)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	mail := signByRoot(t, ca, &x509.Certificate{Subject: pkix.Name{CommonName: "victim"}, EmailAddresses: []string{"victim@example.com"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}})
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageAny} {
		if _, err := mail.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err == nil {
			t.Errorf("an e-mail certificate signed by the root verifies (usage %v)", usage)
		}
	}
	u, _ := url.Parse("https://www.example.com/")
	uri := signByRoot(t, ca, &x509.Certificate{URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if _, err := uri.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("a certificate with a URI signed by the root verifies")
	}
	client := signByRoot(t, ca, &x509.Certificate{DNSNames: []string{"acme-v02.api.letsencrypt.org"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a client certificate signed by the root verifies")
	}
	if err := verifyLeaf(t, ca, "acme-v02.api.letsencrypt.org"); err != nil { // its own leaves still do
		t.Errorf("server leaf: %v", err)
	}
}

// A root on disk from an earlier version (no EKU, no e-mail or URI
// constraint) is replaced at start, as a root that no longer covers the
// list is.
func TestOldRootIsReplaced(t *testing.T) {
	dir := t.TempDir()
	scope := Scope{Names: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	old := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "keychest-amp root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(rootLifetime), KeyUsage: x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true, PermittedDNSDomainsCritical: true,
		PermittedDNSDomains: []string{"localhost"}, PermittedIPRanges: []*net.IPNet{hostNet(net.ParseIP("127.0.0.1"))}}
	der, _ := x509.CreateCertificate(rand.Reader, old, old, &key.PublicKey, key)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, rootCertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, rootKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	ca, created, err := LoadCA(dir, scope)
	if err != nil || !created || len(ca.Root().ExtKeyUsage) != 1 || len(ca.Root().PermittedEmailAddresses) != 1 {
		t.Fatalf("created=%v err=%v root=%+v", created, err, ca.Root().ExtKeyUsage)
	}
	if _, created, _ = LoadCA(dir, scope); created {
		t.Error("the new root was replaced again")
	}
}

// Leaves are minted only for the scope's names and addresses, and the
// cache keeps at most maxLeaves of them, the most recently used.
func TestLeavesOnlyInScopeAndBounded(t *testing.T) {
	scope := Scope{IPs: []net.IP{net.ParseIP("127.0.0.1")}}
	for i := 0; i < 3*maxLeaves; i++ {
		scope.Names = append(scope.Names, fmt.Sprintf("h%d.test", i))
	}
	ca, _, err := LoadCA(t.TempDir(), scope)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"www.example.com", "test", "x.h1.test", "10.0.0.1", "::1"} {
		if _, err := ca.Leaf(host); !errors.Is(err, ErrOutOfScope) {
			t.Errorf("%s: %v, want ErrOutOfScope", host, err)
		}
	}
	first, err := ca.Leaf("h0.test")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3*maxLeaves; i++ {
		if _, err := ca.Leaf(fmt.Sprintf("h%d.test", i)); err != nil {
			t.Fatal(err)
		}
		if i%8 == 0 {
			ca.Leaf("H0.test.") // kept in use: never the least recently used
		}
	}
	if n := ca.cached(); n != maxLeaves {
		t.Errorf("%d leaves cached, want %d", n, maxLeaves)
	}
	if again, _ := ca.Leaf("h0.test"); again != first {
		t.Error("the leaf in use was evicted")
	}
	if ip, err := ca.Leaf("127.0.0.1"); err != nil || !ip.Leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("127.0.0.1: %v", err)
	}
}

// An https:// proxy URL gets a leaf only for a name the proxy answers
// to: 300 handshakes for other names fail and mint nothing.
func TestProxyTLSRefusesNamesOutOfScope(t *testing.T) {
	tp := startProxy(t, HostList{"localhost": {8001}}, x509.NewCertPool())
	handshake := func(name string) error {
		c, err := tls.Dial("tcp", tp.Addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
		return err
	}
	for i := 0; i < 300; i++ {
		if err := handshake(fmt.Sprintf("h%d.example.com", i)); err == nil {
			t.Fatalf("handshake %d for a name out of scope succeeded", i)
		}
	}
	if n := tp.CA.cached(); n != 0 {
		t.Errorf("%d leaves minted for names out of scope", n)
	}
	for _, name := range []string{"localhost", "amp.keychest.invalid", ""} {
		if err := handshake(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}
