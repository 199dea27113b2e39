// SPDX-License-Identifier: Apache-2.0

package agent

import (
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
// discover.conf names (relative to dir unless absolute): each TSIG secret
// and LDAP password file, and each LDAP CA file, must be a regular file
// owned by root or uid and writable by neither group nor others; a
// secret must not be readable by others either (the agent's group may
// read it). A file that does not exist yet is no error here: the source
// then fails when read (AGT0530, AGT0532).
func CheckDiscoverFiles(d Discover, dir string, uid int) error {
	var secrets, others []string
	for _, z := range d.Zones {
		if z.TSIG != nil {
			secrets = append(secrets, z.TSIG.SecretFile)
		}
	}
	for _, l := range d.LDAP {
		if l.PasswordFile != "" {
			secrets = append(secrets, l.PasswordFile)
		}
		if l.CAFile != "" {
			others = append(others, l.CAFile)
		}
	}
	for _, f := range others {
		if err := checkOwner(inDir(dir, f), uid, false); err != nil {
			return err
		}
	}
	for _, f := range secrets {
		if err := checkSecret(inDir(dir, f), uid); err != nil {
			return err
		}
	}
	return nil
}

// checkSecret is checkOwner for a file holding a secret, which others
// may not read either.
func checkSecret(path string, uid int) error {
	if err := checkOwner(path, uid, false); err != nil {
		return err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 {
		return &OwnershipError{path, fmt.Sprintf("mode %04o: a secret readable by others (chmod o-r)", fi.Mode().Perm())}
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
