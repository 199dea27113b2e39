// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentDir makes a DIR (0700) holding a TSIG secret file (0600), and
// returns it with discover.conf's zone source naming the secret (its
// server on loopback, where nothing answers).
func agentDir(t *testing.T) (string, ZoneSource) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tsig.secret"), []byte("c2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := ParseDiscover("zone corp.example server 127.0.0.1:1 tsig k:hmac-sha256:tsig.secret\n")
	if err != nil {
		t.Fatal(err)
	}
	return dir, d.Zones[0]
}

// The ownership rule is applied to the file read at each pass, not only
// at start: a secret loosened, or swapped for a symbolic link, after the
// start fails its source, naming why, before anything is sent.
func TestDiscoverFilesCheckedAtRead(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(p string)
		want   string
	}{
		{"made readable by others", func(p string) { os.Chmod(p, 0o644) }, "readable by others"},
		{"made writable by group", func(p string) { os.Chmod(p, 0o620) }, "writable by group"},
		{"swapped for a link", func(p string) {
			os.WriteFile(p+".other", []byte("b3RoZXI=\n"), 0o600)
			os.Remove(p)
			os.Symlink(p+".other", p)
		}, "symbolic link"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, z := agentDir(t)
			if err := CheckDiscoverFiles(Discover{Zones: []ZoneSource{z}}, dir, os.Getuid()); err != nil {
				t.Fatalf("at start: %v", err)
			}
			c.change(filepath.Join(dir, "tsig.secret"))
			_, err := TransferZone(context.Background(), z, dir, os.Getuid(), 5*time.Second)
			if oe := (*OwnershipError)(nil); !errors.As(err, &oe) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("read after the change: %v, want an OwnershipError saying %q", err, c.want)
			}
		})
	}
}

// A file named by an absolute path is refused when a directory above it
// may be written by group or others (unless sticky, as /tmp), or is
// owned by another user than root or the agent's.
func TestDiscoverFilesParentDirectories(t *testing.T) {
	for _, c := range []struct {
		name string
		mode os.FileMode
		ok   bool
	}{
		{"0755", 0o755, true},
		{"0777", 0o777, false},
		{"0775", 0o775, false},
		{"01777 (sticky)", 0o777 | os.ModeSticky, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, z := agentDir(t)
			shared := filepath.Join(t.TempDir(), "shared")
			os.Mkdir(shared, 0o700)
			secret := filepath.Join(shared, "tsig.secret")
			os.WriteFile(secret, []byte("c2VjcmV0\n"), 0o600)
			if err := os.Chmod(shared, c.mode); err != nil {
				t.Fatal(err)
			}
			z.TSIG.SecretFile = secret
			err := CheckDiscoverFiles(Discover{Zones: []ZoneSource{z}}, dir, os.Getuid())
			if c.ok != (err == nil) {
				t.Fatalf("mode %v: %v", c.mode, err)
			}
			if !c.ok && !strings.Contains(err.Error(), "a directory above it") {
				t.Fatalf("refused for another reason: %v", err)
			}
		})
	}
	if os.Getuid() != 0 {
		return
	}
	dir, z := agentDir(t)
	shared := filepath.Join(t.TempDir(), "nobody's")
	os.Mkdir(shared, 0o755)
	os.WriteFile(filepath.Join(shared, "tsig.secret"), []byte("c2VjcmV0\n"), 0o600)
	os.Chown(shared, 65534, 65534)
	z.TSIG.SecretFile = filepath.Join(shared, "tsig.secret")
	if err := CheckDiscoverFiles(Discover{Zones: []ZoneSource{z}}, dir, 0); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("a directory of uid 65534 above the secret: %v", err)
	}
}

// A secret its group may read (0640) is refused unless that group is
// root's or the agent's own.
func TestSecretReadableByAnotherGroup(t *testing.T) {
	other := -1
	if os.Getuid() == 0 && os.Getgid() != 65534 {
		other = 65534
	} else if gs, _ := os.Getgroups(); len(gs) > 0 {
		for _, g := range gs {
			if g != os.Getgid() && g != 0 {
				other = g
			}
		}
	}
	if other < 0 {
		t.Skip("no group but the agent's own to give the secret to")
	}
	dir, z := agentDir(t)
	p := filepath.Join(dir, "tsig.secret")
	os.Chmod(p, 0o640)
	if err := CheckDiscoverFiles(Discover{Zones: []ZoneSource{z}}, dir, os.Getuid()); err != nil {
		t.Fatalf("0640, the agent's group: %v", err)
	}
	if err := os.Chown(p, -1, other); err != nil {
		t.Fatal(err)
	}
	err := CheckDiscoverFiles(Discover{Zones: []ZoneSource{z}}, dir, os.Getuid())
	if oe := (*OwnershipError)(nil); !errors.As(err, &oe) || !strings.Contains(err.Error(), "readable by group") {
		t.Fatalf("0640, group %d: %v", other, err)
	}
	os.Chmod(p, 0o600) // no group may read it: its group does not matter
	if err := CheckDiscoverFiles(Discover{Zones: []ZoneSource{z}}, dir, os.Getuid()); err != nil {
		t.Fatalf("0600, group %d: %v", other, err)
	}
}
