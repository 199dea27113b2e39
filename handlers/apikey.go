package handlers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"

	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// keyBytes is the randomness in a generated key: 160 bits.
const keyBytes = 20

// Lengths of a key a client makes itself.
const (
	minKeyLen = 16
	maxKeyLen = 64
	prefixLen = 8 // characters of a key that may be logged and shown
)

// NewAPIKey returns a random key in lowercase hex groups of eight,
// like "28a7e10c-1fea0b7d-...".
func NewAPIKey() string {
	var raw [keyBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never on Linux
	}
	h := hex.EncodeToString(raw[:])
	out := make([]byte, 0, len(h)+len(h)/8)
	for i := 0; i < len(h); i += 8 {
		if i > 0 {
			out = append(out, '-')
		}
		out = append(out, h[i:i+8]...)
	}
	return string(out)
}

// parseAPIKey checks a key sent by a client: 16 to 64 characters of
// [A-Za-z0-9-]. Keys are case-sensitive and hashed as sent.
func parseAPIKey(key string) (store.KeyRef, *lineproto.Error) {
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return store.KeyRef{}, lineproto.Errorf(lineproto.CodeBadRequest,
			"apikey must be %d to %d characters long", minKeyLen, maxKeyLen)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return store.KeyRef{}, lineproto.Errorf(lineproto.CodeBadRequest,
				"apikey may only hold letters, digits and '-'")
		}
	}
	return keyRef(key), nil
}

// keyRef returns how a key is stored: its SHA-256 hash and a short prefix.
func keyRef(key string) store.KeyRef {
	return store.KeyRef{Hash: sha256.Sum256([]byte(key)), Prefix: key[:prefixLen]}
}
