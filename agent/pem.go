// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
)

// maxSiteCAs bounds the certificates one --site-ca file may push.
const maxSiteCAs = 20

// readPEMCerts reads the CA certificates of a PEM file, each checked to
// parse and to be a CA, re-encoded as PEM (nothing but the certificates
// leaves the machine).
func readPEMCerts(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		var b *pem.Block
		b, raw = pem.Decode(raw)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("%s: %s is not a CA certificate", path, c.Subject)
		}
		out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	if len(out) == 0 || len(out) > maxSiteCAs {
		return nil, fmt.Errorf("%s: want 1 to %d PEM CA certificates, found %d", path, maxSiteCAs, len(out))
	}
	return out, nil
}
