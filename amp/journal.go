// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/acme"
	"github.com/keychest/keychest-lined/internal/atomicfile"
)

// idBlock is how many ids are reserved on disk at a time: a restart skips
// at most this many, and ids stay strictly increasing.
const idBlock = 1000

// JournalConfig says where the journal writes and what it stamps.
type JournalConfig struct {
	File     string // the local JSON lines file; empty for none
	StateDir string // holds the id reservation
	Proxy    string // the proxy's identity, e-mail form
	Host, IP string
	Version  string
	Queue    *Queue // events to report; nil when reporting is off
}

// Journal numbers events, writes them as JSON lines to the local file and
// appends them to the report queue, in one order.
type Journal struct {
	cfg      JournalConfig
	mu       sync.Mutex
	f        *os.File
	next     int64 // the next id
	reserved int64 // ids up to this one are reserved on disk
	idPath   string
}

// OpenJournal opens (or creates) the local file, cuts a torn last line left
// by a crash, and continues the ids after the highest one ever reserved.
func OpenJournal(cfg JournalConfig) (*Journal, error) {
	j := &Journal{cfg: cfg, idPath: filepath.Join(cfg.StateDir, "journal.id")}
	if raw, err := os.ReadFile(j.idPath); err == nil {
		j.reserved, _ = strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	j.next = j.reserved + 1
	if cfg.File != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.File), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(cfg.File, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, err
		}
		last, err := repairTail(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		j.f, j.next = f, max(j.next, lastID(last)+1)
	}
	return j, nil
}

// repairTail cuts what follows the last newline of f (a line torn by a
// crash) and returns the last whole line.
func repairTail(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return nil, err
	}
	const window = 64 << 10
	start := max(0, st.Size()-window)
	buf := make([]byte, st.Size()-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return nil, err
	}
	cut := bytes.LastIndexByte(buf, '\n') + 1
	if cut == 0 && start > 0 {
		return nil, fmt.Errorf("%s: last line longer than %d bytes", f.Name(), window)
	}
	if int64(cut) < int64(len(buf)) {
		if err := f.Truncate(start + int64(cut)); err != nil {
			return nil, err
		}
	}
	whole := buf[:cut]
	prev := bytes.LastIndexByte(whole[:max(0, len(whole)-1)], '\n') + 1
	return whole[prev:], nil
}

// lastID is the id of a journal line (0 when it has none).
func lastID(line []byte) int64 {
	var e acme.Envelope
	json.Unmarshal(line, &e)
	return e.ID
}

// Write journals one event: it takes the next id, writes the whole line
// with one append, and queues it for reporting.
func (j *Journal) Write(ev Event) (acme.Envelope, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.reserve(); err != nil {
		return acme.Envelope{}, err
	}
	env := acme.Envelope{Msg: ev.Msg, Params: ev.Params, Time: ev.Time.UTC().Format(acme.TimeFormat), Proxy: j.cfg.Proxy,
		ID: j.next, Host: j.cfg.Host, IP: j.cfg.IP, Version: j.cfg.Version, LogTime: time.Now().UTC().Format(acme.TimeFormat)}
	if j.cfg.Queue != nil {
		env.Backlog = j.cfg.Queue.Len()
	}
	line, err := json.Marshal(env)
	if err != nil {
		return env, err
	}
	line = append(line, '\n')
	j.next++
	var ferr, qerr error
	if j.f != nil {
		_, ferr = j.f.Write(line)
	}
	if j.cfg.Queue != nil {
		qerr = j.cfg.Queue.Append(line)
	}
	return env, errors.Join(ferr, qerr)
}

// reserve makes sure the next id is reserved on disk before it is used.
func (j *Journal) reserve() error {
	if j.next <= j.reserved {
		return nil
	}
	top := j.next + idBlock - 1
	if err := atomicfile.Write(j.idPath, []byte(strconv.FormatInt(top, 10)+"\n"), 0o600); err != nil {
		return err
	}
	j.reserved = top
	return nil
}

// Close flushes the local file to disk and closes it.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := errors.Join(j.f.Sync(), j.f.Close())
	j.f = nil
	return err
}
