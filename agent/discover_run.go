// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// PathDiscovered is where the agent posts one source's candidates.
const PathDiscovered = "/api/v1/agent/discovered"

// DiscoverFile is discover.conf's name in DIR; discoverStamp records
// when the last discovery pass ran (for "once").
const (
	DiscoverFile  = "discover.conf"
	discoverStamp = "discover.stamp"
)

// DefaultDiscoverEvery is --discover-every's default.
const DefaultDiscoverEvery = 6 * time.Hour

// transferTimeout bounds the dial and each read and write of a zone
// transfer or LDAP read; stopping the agent cuts them at once.
const transferTimeout = 30 * time.Second

// DiscoveredPost is one source's complete list of candidates: what the
// service has from that source and site but is not in the list is gone.
type DiscoveredPost struct {
	Source     string      `json:"source"` // "axfr:corp.example"
	AutoAdd    bool        `json:"auto_add"`
	Candidates []Candidate `json:"candidates"`
}

// DiscoveredReply says what the service did with a post.
type DiscoveredReply struct {
	Proposed int `json:"proposed"` // new proposals
	Seen     int `json:"seen"`     // known ones seen again
	Gone     int `json:"gone"`     // known ones marked gone
	Added    int `json:"added"`    // added as targets (auto_add)
	// auto_add: left as proposals (the key's cap, the account's limit)
	NotAdded int `json:"not_added"`
}

// LoadDiscover applies the ownership rule to DIR/discover.conf (a missing
// file discovers nothing), parses it, and applies the rule to the files
// it names (CheckDiscoverFiles).
func LoadDiscover(dir string, uid int) (Discover, error) {
	p := filepath.Join(dir, DiscoverFile)
	if err := checkOwner(p, uid, false); err != nil {
		return Discover{}, err
	}
	raw, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		return Discover{}, err
	}
	d, err := ParseDiscover(string(raw))
	if err != nil {
		return Discover{}, err
	}
	return d, CheckDiscoverFiles(d, dir, uid)
}

// loadDiscover is LoadDiscover for Open, logging a refusal under its code.
func (a *Agent) loadDiscover() error {
	d, err := LoadDiscover(a.cfg.Dir, a.cfg.UID)
	if oe := (*OwnershipError)(nil); err != nil && errors.As(err, &oe) {
		a.event(a.Log.Error(), logcode.AgentInsecureFiles).Str("path", oe.Path).Err(err).
			Msg("refusing to start: discover.conf or a file it names is loose")
		return err
	}
	if err != nil {
		a.event(a.Log.Error(), logcode.AgentBadDiscover).Err(err).Msg("refusing to start: discover.conf does not parse")
		return err
	}
	a.discover = d
	return nil
}

// Discover is the parsed discover.conf.
func (a *Agent) Discover() Discover { return a.discover }

// DiscoverPass transfers every zone of discover.conf and posts each
// transferred zone's candidates. A refused or failed transfer is logged
// with its code and posts nothing (so nothing is marked gone for it).
// It returns the first error of a post.
func (a *Agent) DiscoverPass(ctx context.Context) error { return a.discoverPass(ctx, a.client) }

// discoverPass is DiscoverPass posting through c.
func (a *Agent) discoverPass(ctx context.Context, c *Client) error {
	failed := int32(0)
	defer func() { a.discoveryFailed.Store(failed) }()
	for _, z := range a.discover.Zones {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		post, ok := a.transferOne(ctx, z)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !ok {
			failed++
			continue
		}
		var ans DiscoveredReply
		if err := c.postJSON(ctx, PathDiscovered, post, &ans); err != nil {
			return rejected(err)
		}
		a.event(a.Log.Info(), logcode.AgentDiscoverPosted).Str("source", post.Source).Int("proposed", ans.Proposed).
			Int("seen", ans.Seen).Int("gone", ans.Gone).Int("added", ans.Added).Msg("discovered endpoints posted")
		if ans.NotAdded > 0 {
			a.event(a.Log.Warn(), logcode.AgentAutoAddLeft).Str("source", post.Source).Int("not_added", ans.NotAdded).Msg("auto_add left proposals: the key's cap or the account's limit")
		}
	}
	for _, l := range a.discover.LDAP {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		read, err := a.ldapOne(ctx, c, l)
		if !read {
			failed++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// transferOne transfers z and turns it into a post; false when the
// transfer failed (logged unless ctx ended).
func (a *Agent) transferOne(ctx context.Context, z ZoneSource) (DiscoveredPost, bool) {
	start := time.Now()
	rrs, err := TransferZone(ctx, z, a.cfg.Dir, a.cfg.UID, transferTimeout)
	if err != nil && ctx.Err() != nil {
		return DiscoveredPost{}, false
	}
	if err != nil {
		code := logcode.AgentTransferFailed
		if te := (*TransferError)(nil); errors.As(err, &te) && te.Refused {
			code = logcode.AgentTransferRefused
		}
		a.event(a.Log.Warn(), code).Str("zone", z.Zone).Str("server", z.Server).Int("line", z.Line).Err(err).
			Msg("zone transfer refused or failed: nothing discovered from it")
		return DiscoveredPost{}, false
	}
	c := ZoneCandidates(z, rrs, a.allow)
	a.event(a.Log.Info(), logcode.AgentZoneTransferred).Str("zone", z.Zone).Str("server", z.Server).
		Int("records", len(rrs)).Int("candidates", len(c)).Dur("took", time.Since(start)).
		Msg("zone transferred; only endpoints allow.conf permits are candidates")
	return DiscoveredPost{Source: "axfr:" + trimDot(z.Zone), AutoAdd: a.discover.AutoAdd, Candidates: c}, true
}

// discoverIfDue runs a pass when force is set or when --discover-every
// passed since the last one (DIR/discover.stamp), and then records it.
// false when a post failed (the pass is then due again).
func (a *Agent) discoverIfDue(ctx context.Context, force bool) bool {
	return a.discoverIfDueWith(ctx, a.client, force)
}

// discoverIfDueWith is discoverIfDue posting through c.
func (a *Agent) discoverIfDueWith(ctx context.Context, c *Client, force bool) bool {
	if len(a.discover.Zones)+len(a.discover.LDAP) == 0 {
		return true
	}
	stamp := filepath.Join(a.cfg.Dir, discoverStamp)
	if fi, err := os.Stat(stamp); !force && err == nil && time.Since(fi.ModTime()) < a.cfg.DiscoverEvery {
		return true
	}
	if err := a.discoverPass(ctx, c); err != nil {
		if ctx.Err() != nil {
			return false // stopped, not failed
		}
		a.event(a.Log.Warn(), logcode.AgentServerDown).Err(err).Msg("posting discovered endpoints failed; retried later")
		return false
	}
	now := time.Now()
	if err := os.WriteFile(stamp, nil, fileMode); err == nil {
		os.Chtimes(stamp, now, now)
	}
	return true
}

// discoverBeside starts, for run, a discovery pass in a goroutine of
// its own when none is under way, so that a long transfer or LDAP read
// never holds up the jobs: the first after the start is forced, the
// others wait for --discover-every (a pass whose post failed is forced
// again). Run waits for it before it returns. The pass posts through a
// copy of the client made here, on Run's goroutine: Contact may set the
// client's key meanwhile (a new registration).
func (a *Agent) discoverBeside(ctx context.Context) {
	if !a.discovering.CompareAndSwap(false, true) {
		return
	}
	a.discoveryDone.Add(1)
	c := *a.client
	go func() {
		defer a.discoveryDone.Done()
		defer a.discovering.Store(false)
		if a.discoverIfDueWith(ctx, &c, !a.discovered.Load()) {
			a.discovered.Store(true)
		}
	}()
}

func trimDot(s string) string {
	if len(s) > 1 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}
