// SPDX-License-Identifier: Apache-2.0

package names

import (
	"crypto/rand"
	"encoding/base64"
)

// NewToken returns a random link token: 256 bits, URL-safe base64.
func NewToken() string {
	return base64.RawURLEncoding.EncodeToString(random(32))
}

// random returns n bytes from crypto/rand.
func random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never on Linux
	}
	return b
}
