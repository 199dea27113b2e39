// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func verifyLeaf(t *testing.T, ca *CA, host string) error {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root())
	// Mint around the cache and the scope check: sign whatever is asked.
	leaf, err := ca.mint(host)
	if err != nil {
		return err
	}
	_, err = leaf.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
	return err
}

func TestNameConstraintHolds(t *testing.T) {
	dir := t.TempDir()
	scope := Scope{Names: []string{"acme-v02.api.letsencrypt.org", "localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}}
	ca, created, err := LoadCA(dir, scope)
	if err != nil || !created {
		t.Fatalf("LoadCA: created=%v err=%v", created, err)
	}
	for _, host := range []string{"acme-v02.api.letsencrypt.org", "localhost", "127.0.0.1"} {
		if err := verifyLeaf(t, ca, host); err != nil {
			t.Errorf("listed host %s: %v", host, err)
		}
	}
	for _, host := range []string{"www.example.com", "letsencrypt.org", "api.letsencrypt.org", "10.0.0.1", "::1"} {
		err := verifyLeaf(t, ca, host)
		if _, ok := err.(x509.CertificateInvalidError); !ok {
			t.Errorf("host %s off the list: want a constraint violation, got %v", host, err)
		}
	}
	if !ca.Root().PermittedDNSDomainsCritical {
		t.Error("name constraints are not critical")
	}
	st, err := os.Stat(filepath.Join(dir, rootKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st.Mode(), err)
	}
	// Second start: same root. A wider scope: a new root.
	again, created, err := LoadCA(dir, scope)
	if err != nil || created || !again.Root().Equal(ca.Root()) {
		t.Fatalf("reload: created=%v err=%v", created, err)
	}
	scope.Names = append(scope.Names, "acme.example.net")
	wider, created, err := LoadCA(dir, scope)
	if err != nil || !created || wider.Root().Equal(ca.Root()) {
		t.Fatalf("wider scope: created=%v err=%v", created, err)
	}
	if err := verifyLeaf(t, wider, "acme.example.net"); err != nil {
		t.Errorf("added host: %v", err)
	}
}

func TestLeavesAreCached(t *testing.T) {
	ca, _, err := LoadCA(t.TempDir(), Scope{Names: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ca.Leaf("localhost")
	b, _ := ca.Leaf("LOCALHOST")
	if a != b {
		t.Error("a second leaf was minted for the same host")
	}
}
