// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"crypto/tls"
	"crypto/x509"
)

func tlsConfigFor(roots *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: roots} }
