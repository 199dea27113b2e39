// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"strconv"
	"strings"

	"github.com/keychest/keychest-lined/finding"
)

// Fingerprint is how a certificate is known from one probe to the next,
// in the history and on the pages: the SHA-256 of its DER.
func Fingerprint(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }

// CertInfo summarises a certificate for storage and display.
func CertInfo(c *x509.Certificate) finding.CertInfo {
	keyType, bits := publicKey(c)
	sans := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		sans = append(sans, ip.String())
	}
	return finding.CertInfo{
		Fingerprint: Fingerprint(c),
		Subject:     c.Subject.String(),
		Issuer:      c.Issuer.String(),
		IssuerCN:    c.Issuer.CommonName,
		Serial:      strings.ToLower(c.SerialNumber.Text(16)),
		SANs:        sans,
		NotBefore:   c.NotBefore.UTC(),
		NotAfter:    c.NotAfter.UTC(),
		KeyType:     keyType,
		KeyBits:     bits,
		SigAlg:      c.SignatureAlgorithm.String(),
	}
}

// publicKey names the key's algorithm and size in bits.
func publicKey(c *x509.Certificate) (string, int) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		return "ECDSA", k.Curve.Params().BitSize
	case ed25519.PublicKey:
		return "Ed25519", 256
	}
	return c.PublicKeyAlgorithm.String(), 0
}

// weakness says why a certificate is weak, or "": an RSA key under 2048
// bits or a SHA-1 signature.
func weakness(c *x509.Certificate) string {
	if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		return "RSA key of " + strconv.Itoa(k.N.BitLen()) + " bits"
	}
	switch c.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1:
		return "SHA-1 signature (" + c.SignatureAlgorithm.String() + ")"
	}
	return ""
}
