// SPDX-License-Identifier: Apache-2.0

// Package certtest makes what the monitor's tests probe: a CA that issues
// leaves with chosen lifetimes, TLS servers on loopback whose certificate
// can be swapped, a CRL server and a DNS server. Nothing here reaches
// beyond the machine.
package certtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"time"
)

// CA is a root that signs leaves and CRLs directly.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte
	// CRLURL, when set before issuing, goes into every leaf's CRL
	// distribution point.
	CRLURL string
	// OCSPURL, when set before issuing, goes into every leaf's OCSP
	// responders (see ServeOCSP).
	OCSPURL string
	serial  atomic.Int64
}

// NewCA makes a self-signed ECDSA root valid for ten years around now.
func NewCA(name string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-5 * 365 * 24 * time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.serial.Store(1000)
	return ca, nil
}

// Pool is a pool holding only this root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf describes a certificate to issue.
type Leaf struct {
	Names     []string
	NotBefore time.Time
	NotAfter  time.Time
	RSABits   int // 0: ECDSA P-256
}

// Lifetime is a leaf for names of lifetime life with left remaining at now.
func Lifetime(now time.Time, life, left time.Duration, names ...string) Leaf {
	return Leaf{Names: names, NotBefore: now.Add(left - life), NotAfter: now.Add(left)}
}

// Issue signs a leaf and returns it as a TLS certificate with its chain
// (leaf only: the root is the trust anchor) and the parsed leaf.
func (ca *CA) Issue(l Leaf) (tls.Certificate, error) {
	var key crypto.Signer
	var err error
	if l.RSABits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, l.RSABits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return tls.Certificate{}, err
	}
	var dnsNames []string
	var ips []net.IP
	for _, n := range l.Names { // an address is an IP SAN
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, n)
		}
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial.Add(1)),
		Subject: pkix.Name{CommonName: l.Names[0]}, DNSNames: dnsNames, IPAddresses: ips,
		NotBefore: l.NotBefore, NotAfter: l.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ca.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{ca.CRLURL}
	}
	if ca.OCSPURL != "" {
		tmpl.OCSPServer = []string{ca.OCSPURL}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// CRL signs a revocation list naming serials, valid from thisUpdate to
// nextUpdate.
func (ca *CA) CRL(thisUpdate, nextUpdate time.Time, serials ...*big.Int) ([]byte, error) {
	tmpl := &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: thisUpdate})
	}
	return x509.CreateRevocationList(rand.Reader, tmpl, ca.Cert, ca.Key)
}
