// SPDX-License-Identifier: Apache-2.0

package names

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// keyBytes is the randomness in a generated key: 160 bits.
const keyBytes = 20

// Lengths of a key a client makes itself.
const (
	MinKeyLen = 16
	MaxKeyLen = 64
	// PrefixLen is how many characters of a key may be logged and shown.
	PrefixLen = 8
)

// KeyRef is how a key is stored and looked up: its SHA-256 hash and its
// first PrefixLen characters. The key itself is never kept.
type KeyRef struct {
	Hash   [32]byte
	Prefix string
}

// NewAPIKey returns a random key in lowercase hex groups of eight,
// like "28a7e10c-1fea0b7d-...".
func NewAPIKey() string {
	h := hex.EncodeToString(random(keyBytes))
	out := make([]byte, 0, len(h)+len(h)/8)
	for i := 0; i < len(h); i += 8 {
		if i > 0 {
			out = append(out, '-')
		}
		out = append(out, h[i:i+8]...)
	}
	return string(out)
}

// ParseAPIKey checks a key sent by a client: MinKeyLen to MaxKeyLen
// characters of [A-Za-z0-9-]. Keys are case-sensitive and hashed as sent.
func ParseAPIKey(key string) (KeyRef, error) {
	if len(key) < MinKeyLen || len(key) > MaxKeyLen {
		return KeyRef{}, invalid(fmt.Sprintf("apikey must be %d to %d characters long", MinKeyLen, MaxKeyLen))
	}
	if !KeyChars(key) {
		return KeyRef{}, invalid("apikey may only hold letters, digits and '-'")
	}
	return HashAPIKey(key), nil
}

// KeyChars reports whether s holds only the characters of a key:
// letters, digits and '-'.
func KeyChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// HashAPIKey returns how a key is stored. The key must be valid
// (NewAPIKey's, or one ParseAPIKey took).
func HashAPIKey(key string) KeyRef {
	return KeyRef{Hash: sha256.Sum256([]byte(key)), Prefix: key[:PrefixLen]}
}
