// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// memStore is the Store interface in memory, for fuzzing the handlers.
type memStore struct {
	mu      sync.Mutex
	keys    map[[32]byte]string // hash -> email ("" unclaimed)
	domains map[[32]byte]map[string]bool
}

func newMemStore() *memStore {
	return &memStore{keys: map[[32]byte]string{}, domains: map[[32]byte]map[string]bool{}}
}

func (m *memStore) CreateKey(_ context.Context, k store.NewKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys[k.Key.Hash] = ""
	return nil
}

func (m *memStore) ClaimKey(_ context.Context, c store.Claim) (store.ClaimOutcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	owner, ok := m.keys[c.Key.Hash]
	switch {
	case ok && owner == c.Email:
		return store.ClaimUnchanged, nil
	case ok && owner != "":
		return 0, store.ErrKeyClaimed
	}
	m.keys[c.Key.Hash] = c.Email
	return store.ClaimNewAccount, nil
}

func (m *memStore) AddDomain(_ context.Context, d store.NewDomain) (store.AddResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[d.Key.Hash]; !ok {
		return store.AddResult{}, store.ErrUnknownKey
	}
	if m.domains[d.Key.Hash] == nil {
		m.domains[d.Key.Hash] = map[string]bool{}
	}
	if m.domains[d.Key.Hash][d.Name] {
		return store.AddResult{Outcome: store.DomainExists}, nil
	}
	if len(m.domains[d.Key.Hash]) >= d.MaxPerKey {
		return store.AddResult{}, store.ErrDomainLimit
	}
	m.domains[d.Key.Hash][d.Name] = true
	return store.AddResult{Outcome: store.DomainAdded}, nil
}

func (m *memStore) RemoveDomain(_ context.Context, d store.DomainRef) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[d.Key.Hash]; !ok {
		return false, store.ErrUnknownKey
	}
	had := m.domains[d.Key.Hash][d.Name]
	delete(m.domains[d.Key.Hash], d.Name)
	return had, nil
}

func (m *memStore) KeyStatus(_ context.Context, k store.KeyRef) (store.KeyStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	email, ok := m.keys[k.Hash]
	if !ok {
		return store.KeyStatus{}, store.ErrUnknownKey
	}
	return store.KeyStatus{Prefix: k.Prefix, Email: email, Domains: len(m.domains[k.Hash])}, nil
}

func (m *memStore) KeyDomains(_ context.Context, k store.KeyRef) ([]store.Domain, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[k.Hash]; !ok {
		return nil, store.ErrUnknownKey
	}
	var out []store.Domain
	for name := range m.domains[k.Hash] {
		out = append(out, store.Domain{Name: name, Port: 443})
	}
	return out, nil
}

func (m *memStore) Ping(context.Context) error { return nil }

func (m *memStore) CertStatus(_ context.Context, k store.KeyRef, name string, port int) (store.CertStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[k.Hash]; !ok {
		return store.CertStatus{}, store.ErrUnknownKey
	}
	if !m.domains[k.Hash][name] {
		return store.CertStatus{}, store.ErrNotFound
	}
	return store.CertStatus{Name: name, Port: port, State: "unknown"}, nil
}

func (m *memStore) RequestCheck(ctx context.Context, k store.KeyRef, name string, port int, _ time.Time, _ time.Duration) error {
	_, err := m.CertStatus(ctx, k, name, port)
	return err
}

// FuzzMux runs arbitrary lines through the parser and the real handlers
// over the store interface: nothing panics, every reply fits one read and
// carries a known status code.
func FuzzMux(f *testing.F) {
	for _, seed := range []string{
		"command apikey", "command claim apikey Own-Key-0123456789 email a@b.example",
		"command add domain bücher.example:8443 apikey Own-Key-0123456789",
		"command add domain *.x.example apikey Own-Key-0123456789", "command list apikey Own-Key-0123456789",
		"command remove domain x.example apikey Own-Key-0123456789", "command status apikey Own-Key-0123456789",
		"command cert domain x.example apikey Own-Key-0123456789", "command check domain x.example apikey Own-Key-0123456789",
		"command add domain https://[::1]:0/ apikey k", "command claim apikey k email \"@\"",
	} {
		f.Add([]byte(seed))
	}
	m := NewMux(newMemStore(), testConfig(5), zerolog.Nop())
	known := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 409: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, line []byte) {
		req, perr := lineproto.ParseLine(line)
		if perr != nil || req.Verb == "" {
			return
		}
		req.Remote = netip.MustParseAddr("192.0.2.1")
		r := m.Serve(context.Background(), &req)
		b := r.Bytes()
		if !known[r.Code] || len(b) > lineproto.MaxReplyBytes || !strings.HasPrefix(string(b[strings.LastIndex(strings.TrimSuffix(string(b), "\n"), "\n")+1:]), "status ") {
			t.Fatalf("%q: %d %q", line, r.Code, b)
		}
	})
}
