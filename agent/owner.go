// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// OwnershipError says why DIR or allow.conf may not be trusted.
type OwnershipError struct {
	Path string
	Why  string
}

func (e *OwnershipError) Error() string { return e.Path + ": " + e.Why }

// CheckOwnership refuses a DIR or allow.conf that anyone but root or uid
// (the agent's own user) could write, as sshd refuses loose key files:
// each must be owned by root or uid, and writable by neither group nor
// others. allow.conf must be a regular file (not a symbolic link).
func CheckOwnership(dir string, uid int) error {
	if err := checkOwner(dir, uid, true); err != nil {
		return err
	}
	return checkOwner(filepath.Join(dir, "allow.conf"), uid, false)
}

// checkOwner checks one path; a missing allow.conf is not an error here
// (the agent then allows nothing).
func checkOwner(path string, uid int, isDir bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		if !isDir && os.IsNotExist(err) {
			return nil
		}
		return &OwnershipError{path, err.Error()}
	}
	return checkMode(path, fi, uid, isDir)
}

// checkMode applies the rule to what Lstat or Fstat said of path.
func checkMode(path string, fi fs.FileInfo, uid int, isDir bool) error {
	switch {
	case isDir && !fi.IsDir():
		return &OwnershipError{path, "not a directory"}
	case !isDir && !fi.Mode().IsRegular():
		return &OwnershipError{path, "not a regular file"}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &OwnershipError{path, "cannot read its owner"}
	}
	if owner := int(st.Uid); owner != 0 && owner != uid {
		return &OwnershipError{path, fmt.Sprintf("owned by uid %d, not root nor the agent's uid %d", owner, uid)}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return &OwnershipError{path, fmt.Sprintf("mode %04o is writable by group or others (chmod go-w)", perm)}
	}
	return nil
}

// CheckDiscoverFiles applies the rule of allow.conf to the files
// discover.conf names (relative to dir unless absolute), as each read
// does again (readOwned): each TSIG secret and LDAP password file, and
// each LDAP CA file, must be a regular file owned by root or uid and
// writable by neither group nor others, below directories owned by root
// or uid and writable by neither group nor others (unless sticky, as
// /tmp); a secret must not be readable by others either, nor by a group
// other than root's or the agent's own. A file that does not exist yet
// is no error here: the source then fails when read (AGT0530, AGT0532).
func CheckDiscoverFiles(d Discover, dir string, uid int) error {
	check := func(name string, secret bool) error {
		p := inDir(dir, name)
		f, err := openOwned(p, uid, os.Getgid(), secret)
		switch oe := (*OwnershipError)(nil); {
		case err == nil:
			return f.Close()
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case errors.As(err, &oe):
			return err
		}
		return &OwnershipError{p, err.Error()}
	}
	for _, z := range d.Zones {
		if z.TSIG != nil {
			if err := check(z.TSIG.SecretFile, true); err != nil {
				return err
			}
		}
	}
	for _, l := range d.LDAP {
		if err := checkLDAPFiles(l, check); err != nil {
			return err
		}
	}
	return nil
}

// checkLDAPFiles applies check to an LDAP source's files.
func checkLDAPFiles(l LDAPSource, check func(name string, secret bool) error) error {
	if l.CAFile != "" {
		if err := check(l.CAFile, false); err != nil {
			return err
		}
	}
	if l.PasswordFile != "" {
		return check(l.PasswordFile, true)
	}
	return nil
}

// dirMode and fileMode are the modes the agent creates DIR and its files with.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// EnsureDir creates DIR with mode 0700 when it does not exist yet.
func EnsureDir(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return err
		}
		return os.Chmod(dir, dirMode) // whatever the umask
	}
	return nil
}
