// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keychest/keychest-lined/internal/logcode"
)

func TestCheckOwnership(t *testing.T) {
	uid := os.Getuid()
	cases := []struct {
		name     string
		dirMode  os.FileMode
		allow    os.FileMode // 0: no allow.conf
		symlink  bool
		wantPath string // "" when accepted
	}{
		{"strict", 0o700, 0o600, false, ""},
		{"no allow.conf yet", 0o700, 0, false, ""},
		{"readable allow.conf", 0o755, 0o644, false, ""},
		{"DIR writable by group", 0o770, 0o600, false, "."},
		{"DIR writable by all", 0o777, 0o600, false, "."},
		{"allow.conf writable by group", 0o700, 0o620, false, "allow.conf"},
		{"allow.conf writable by others", 0o700, 0o602, false, "allow.conf"},
		{"allow.conf a symlink", 0o700, 0o600, true, "allow.conf"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "agent")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			allow := filepath.Join(dir, "allow.conf")
			if c.allow != 0 {
				target := allow
				if c.symlink {
					target = filepath.Join(dir, "real.conf")
					os.Symlink(target, allow)
				}
				os.WriteFile(target, []byte("allow 10.0.0.0/8 443\n"), 0o600)
				os.Chmod(target, c.allow)
			}
			os.Chmod(dir, c.dirMode)
			err := CheckOwnership(dir, uid)
			var oe *OwnershipError
			switch {
			case c.wantPath == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.wantPath == "":
			case !errors.As(err, &oe):
				t.Fatalf("accepted, or not an OwnershipError: %v", err)
			case oe.Path != filepath.Join(dir, c.wantPath):
				t.Fatalf("refused %s, want %s", oe.Path, c.wantPath)
			}
		})
	}
}

// Files owned by another user than root and the agent's are refused.
func TestCheckOwnershipOtherUser(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	if err := CheckOwnership(dir, os.Getuid()+1); os.Getuid() != 0 && err == nil {
		t.Fatal("DIR owned by another user accepted")
	}
	if os.Getuid() != 0 {
		return
	}
	// As root: chown to nobody and check as another uid.
	os.Chown(dir, 65534, 65534)
	if err := CheckOwnership(dir, 1000); err == nil {
		t.Fatal("DIR owned by uid 65534 accepted for uid 1000")
	}
	if err := CheckOwnership(dir, 65534); err != nil {
		t.Fatalf("DIR owned by the agent's own uid refused: %v", err)
	}
}

func TestEnsureDirMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "keychest-agent")
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("DIR mode %v, %v", fi.Mode().Perm(), err)
	}
}

// The files discover.conf names follow allow.conf's rule, and a secret
// (a TSIG secret, an LDAP password) may not be readable by others either;
// a CA file may. Open refuses a loose one with AGT0501, naming it.
func TestOpenRefusesLooseDiscoverFiles(t *testing.T) {
	for _, c := range []struct {
		file string
		mode os.FileMode
		ok   bool
	}{
		{"tsig.secret", 0o600, true},
		{"tsig.secret", 0o640, true}, // root:keychest-agent 0640
		{"tsig.secret", 0o644, false},
		{"tsig.secret", 0o620, false},
		{"ldap.pw", 0o640, true},
		{"ldap.pw", 0o604, false},
		{"ldap.pw", 0o602, false},
		{"ldap-ca.pem", 0o644, true},
		{"ldap-ca.pem", 0o664, false},
	} {
		dir := filepath.Join(t.TempDir(), "keychest-agent")
		os.Mkdir(dir, 0o700)
		conf := "zone corp.example server 127.0.0.1:53 tsig k:hmac-sha256:tsig.secret\n" +
			"ldap ldap://127.0.0.1 base dc=x bind cn=a,dc=x " + filepath.Join(dir, "ldap.pw") + " starttls ca ldap-ca.pem\n"
		os.WriteFile(filepath.Join(dir, DiscoverFile), []byte(conf), 0o600)
		for _, f := range []string{"tsig.secret", "ldap.pw", "ldap-ca.pem"} {
			os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600)
		}
		os.Chmod(filepath.Join(dir, c.file), c.mode)
		a, err := Open(Config{Dir: dir, Server: "http://127.0.0.1:1", UID: os.Getuid()})
		if a != nil {
			a.Close()
		}
		if c.ok {
			if err != nil {
				t.Errorf("%s %04o: refused: %v", c.file, c.mode, err)
			}
			continue
		}
		if seen, raw := entries(t, dir); err == nil || seen[logcode.AgentInsecureFiles] != 1 || !strings.Contains(raw, c.file) {
			t.Errorf("%s %04o: %v, codes %v", c.file, c.mode, err, seen)
		}
	}
}
