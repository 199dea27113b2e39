// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// codeAlphabet is Crockford's base 32: no I, L, O or U to misread.
const codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewClaimCode returns a fresh one-time claim code, 10 characters of
// base 32 (50 bits) as XXXXX-XXXXX.
func NewClaimCode() string {
	var raw [10]byte
	if _, err := rand.Read(raw[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	var b strings.Builder
	for i, c := range raw {
		if i == 5 {
			b.WriteByte('-')
		}
		b.WriteByte(codeAlphabet[c&31])
	}
	return b.String()
}

// ClaimCode makes a claim code, registers it with the server (which keeps
// only its hash) and returns it with its expiry. The code exists only on
// this machine and at the server: whoever sends it in "command claim agent
// CODE apikey K" proved they can read the agent's machine.
func (a *Agent) ClaimCode(ctx context.Context) (string, time.Time, error) {
	id, err := a.identity(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	a.client.Key = id.APIKey
	code := NewClaimCode()
	var ans ClaimCodeReply
	if err := a.client.postJSON(ctx, PathClaimCode, ClaimCodeRequest{Code: code}, &ans); err != nil {
		return "", time.Time{}, rejected(err)
	}
	a.event(a.Log.Info(), logcode.AgentClaimCode).Str("id", id.ID).Time("expires", ans.Expires).
		Msg("claim code made (the code is not logged)")
	return code, ans.Expires, nil
}

// Status prints what "status" shows: id, claimed, site, server, last
// contact and the allow-list, from DIR alone (no network).
func Status(w io.Writer, dir string, allow Allow) error {
	id, err := LoadIdentity(dir)
	if err != nil && err != ErrNoIdentity {
		return err
	}
	fmt.Fprintf(w, "id: %s\n", orNone(id.ID))
	fmt.Fprintf(w, "claimed: %s\n", map[bool]string{true: "yes", false: "no"}[id.Claimed])
	fmt.Fprintf(w, "site: %s\n", orNone(id.Site))
	fmt.Fprintf(w, "server: %s\n", orNone(id.Server))
	last := "never"
	if !id.LastContact.IsZero() {
		last = id.LastContact.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "last contact: %s\n", last)
	if len(allow.Rules) == 0 {
		fmt.Fprintln(w, "allow: nothing (no rule in allow.conf: every job is refused)")
	}
	for _, r := range allow.Rules {
		fmt.Fprintf(w, "allow: %s (line %d)\n", strings.TrimPrefix(r.String(), "allow "), r.Line)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// LoadAllow reads and parses DIR/allow.conf (none: nothing allowed).
func LoadAllow(dir string) (Allow, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "allow.conf"))
	if err != nil && !os.IsNotExist(err) {
		return Allow{}, err
	}
	return ParseAllow(string(raw))
}

// ClaimCodeHash normalises a claim code as a person may type it (any
// case, with or without the hyphen, O for 0, I and L for 1) and returns
// the SHA-256 hash the server keeps; false when it is no claim code.
func ClaimCodeHash(raw string) ([32]byte, bool) {
	s := strings.NewReplacer("-", "", "O", "0", "I", "1", "L", "1").Replace(strings.ToUpper(raw))
	if len(s) != 10 || strings.Trim(s, codeAlphabet) != "" {
		return [32]byte{}, false
	}
	return sha256.Sum256([]byte(s[:5] + "-" + s[5:])), true
}
