// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/keychest/keychest-lined/internal/atomicfile"
)

// State is what the proxy keeps about itself in its -e folder (amp.json,
// mode 0600): its identity and the API key keychest-lined gave it.
type State struct {
	Proxy   string `json:"proxy"`             // identity in e-mail form
	APIKey  string `json:"apikey,omitempty"`  // from "command apikey"
	Claimed string `json:"claimed,omitempty"` // the email the key was claimed for

	path string
	mu   sync.Mutex
}

// LoadState reads amp.json from dir, creating it with a fresh identity.
func LoadState(dir string) (*State, error) {
	s := &State{path: filepath.Join(dir, "amp.json")}
	raw, err := os.ReadFile(s.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, s); err != nil {
			return nil, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	if s.Proxy == "" {
		s.Proxy = newIdentity() + "@amp.keychest.net"
		if err := s.save(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// newIdentity is 24 random lowercase letters and digits, as the seed's.
func newIdentity() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 24)
	rand.Read(b)
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String()
}

// Key returns the API key and the email it was claimed for.
func (s *State) Key() (key, claimed string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.APIKey, s.Claimed
}

// SetKey stores the API key and its claim.
func (s *State) SetKey(key, claimed string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.APIKey, s.Claimed = key, claimed
	return s.save()
}

func (s *State) save() error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.path, append(raw, '\n'), 0o600)
}
