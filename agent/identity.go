// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/internal/atomicfile"
)

// IdentityFile is the name of the identity file in DIR.
const IdentityFile = "identity.json"

// Identity is what the server gave the agent at registration: its API
// key and its id, in the form of an e-mail address. It lives in
// DIR/identity.json, mode 0600; the key never goes to a log.
type Identity struct {
	ID     string `json:"id"`
	APIKey string `json:"api_key"`
	Server string `json:"server"` // the server it was given by
	// What the last heartbeat said; for "status".
	Claimed     bool      `json:"claimed"`
	Site        string    `json:"site,omitempty"`
	LastContact time.Time `json:"last_contact,omitzero"`
}

// KeyPrefix is the loggable start of the key.
func (id Identity) KeyPrefix() string {
	if len(id.APIKey) < 8 {
		return id.APIKey
	}
	return id.APIKey[:8]
}

// ErrNoIdentity is LoadIdentity's error before the first registration.
var ErrNoIdentity = errors.New("no identity yet: the agent has not registered")

// LoadIdentity reads DIR/identity.json. A file that others may read is
// refused: the key in it is the agent's authority.
func LoadIdentity(dir string) (Identity, error) {
	path := filepath.Join(dir, IdentityFile)
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return Identity{}, ErrNoIdentity
	}
	if err != nil {
		return Identity{}, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return Identity{}, fmt.Errorf("%s: mode %04o: want a regular file of mode 0600", path, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, err
	}
	var id Identity
	if err := json.Unmarshal(raw, &id); err != nil || id.APIKey == "" || !strings.Contains(id.ID, "@") {
		return Identity{}, fmt.Errorf("%s: not an identity file (remove it to register again)", path)
	}
	return id, nil
}

// SaveIdentity writes id to DIR/identity.json, mode 0600, atomically.
func SaveIdentity(dir string, id Identity) error {
	raw, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, IdentityFile), append(raw, '\n'), fileMode)
}
