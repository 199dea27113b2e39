// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// maxOwnedFile bounds a file discover.conf names (a secret, a CA file).
const maxOwnedFile = 1 << 20

// readOwned reads a file discover.conf names (openOwned) at most
// maxOwnedFile bytes of it.
func readOwned(path string, uid int, secret bool) ([]byte, error) {
	f, err := openOwned(path, uid, os.Getgid(), secret)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxOwnedFile))
}

// openOwned opens path for reading and applies the ownership rule to
// the file opened, not to what the path named a moment before: each
// directory above it must be owned by root or uid and writable by
// neither group nor others unless sticky (checkParents); the file is
// opened without following a symbolic link, and what fstat says of it
// must be a regular file owned by root or uid, writable by neither group
// nor others. A secret may be read by neither others nor a group other
// than root's or gid (the agent's group).
func openOwned(path string, uid, gid int, secret bool) (*os.File, error) {
	real, err := checkParents(path, uid)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, &OwnershipError{path, "a symbolic link, not a regular file"}
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkMode(path, fi, uid, false)
	}
	if err == nil && secret {
		err = checkSecretMode(path, fi, gid)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkSecretMode is the rule of secrets: readable by neither others
// nor a group other than root's or gid.
func checkSecretMode(path string, fi fs.FileInfo, gid int) error {
	perm := fi.Mode().Perm()
	if perm&0o004 != 0 {
		return &OwnershipError{path, fmt.Sprintf("mode %04o: a secret readable by others (chmod o-r)", perm)}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &OwnershipError{path, "cannot read its group"}
	}
	if g := int(st.Gid); perm&0o040 != 0 && g != 0 && g != gid {
		return &OwnershipError{path, fmt.Sprintf("mode %04o: a secret readable by group %d, neither root's nor the agent's group %d (chgrp or chmod g-r)", perm, g, gid)}
	}
	return nil
}

// checkParents resolves the symbolic links of path's directory and
// checks each directory from it up to the root; it returns path with its
// directory resolved, to be opened without following a final link.
func checkParents(path string, uid int) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		if err != nil {
			return "", err
		}
		var info fs.FileInfo = fi
		if fi.IsDir() && fi.Mode()&fs.ModeSticky != 0 {
			info = sticky{fi}
		}
		if err := checkMode(d, info, uid, true); err != nil {
			return "", &OwnershipError{path, "a directory above it: " + err.Error()}
		}
		if d == filepath.Dir(d) {
			return filepath.Join(dir, filepath.Base(abs)), nil
		}
	}
}

// sticky is a sticky directory's FileInfo without its group and others'
// write bits: in it, none but an entry's owner may replace the entry.
type sticky struct{ fs.FileInfo }

// Mode is the directory's mode less go-w.
func (s sticky) Mode() fs.FileMode { return s.FileInfo.Mode() &^ 0o022 }
