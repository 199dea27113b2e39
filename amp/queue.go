// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/keychest/keychest-lined/internal/atomicfile"
)

// compactAfter is how many sent bytes at the head of the queue file make
// the queue copy its unsent tail into a fresh file.
const compactAfter = 4 << 20

// Queue is the disk queue of journal lines waiting to be reported. Lines are
// appended to queue.<gen>.jsonl; queue.pos holds "<gen> <offset>", the first
// unsent byte, and moves on when a batch is acknowledged. Past max lines
// waiting, the oldest are dropped.
type Queue struct {
	dir     string
	max     int
	dropped func(n int) // told how many lines were dropped

	mu     sync.Mutex
	f      *os.File
	gen    int64
	offset int64 // first unsent byte
	size   int64
	count  int // lines waiting
	ready  chan struct{}
}

// OpenQueue opens the queue in dir, cutting a torn last line.
func OpenQueue(dir string, max int, dropped func(int)) (*Queue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	q := &Queue{dir: dir, max: max, dropped: dropped, ready: make(chan struct{}, 1)}
	if raw, err := os.ReadFile(q.posPath()); err == nil {
		fmt.Sscan(string(raw), &q.gen, &q.offset)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	f, err := os.OpenFile(q.segment(q.gen), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := repairTail(f); err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	q.f, q.size = f, st.Size()
	q.offset = min(q.offset, q.size)
	if q.count, err = q.countLines(q.offset, q.size); err != nil {
		return nil, err
	}
	q.removeOtherSegments()
	if q.count > 0 {
		q.ready <- struct{}{}
	}
	return q, nil
}

func (q *Queue) posPath() string { return filepath.Join(q.dir, "queue.pos") }

func (q *Queue) segment(gen int64) string {
	return filepath.Join(q.dir, "queue."+strconv.FormatInt(gen, 10)+".jsonl")
}

func (q *Queue) removeOtherSegments() {
	names, _ := filepath.Glob(filepath.Join(q.dir, "queue.*.jsonl"))
	for _, n := range names {
		if n != q.segment(q.gen) {
			os.Remove(n)
		}
	}
}

// Len is the number of lines waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count
}

// Ready is signalled when lines wait.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Append adds one whole line, dropping the oldest past the cap.
func (q *Queue) Append(line []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, err := q.f.Write(line); err != nil {
		return err
	}
	q.size += int64(len(line))
	q.count++
	if q.count > q.max {
		if err := q.dropOldest(q.count - q.max + q.max/10); err != nil {
			return err
		}
	}
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return nil
}

// dropOldest moves the head past n lines (a tenth of the cap at a time, so
// a full queue does not read the file on every append).
func (q *Queue) dropOldest(n int) error {
	end := q.offset
	buf := make([]byte, 64<<10)
	for dropped := 0; dropped < n && end < q.size; {
		k, err := q.f.ReadAt(buf[:min(int64(len(buf)), q.size-end)], end)
		if err != nil && err != io.EOF {
			return err
		}
		for _, b := range buf[:k] {
			end++
			if b == '\n' {
				if dropped++; dropped == n {
					break
				}
			}
		}
	}
	gone, err := q.countLines(q.offset, end)
	if err != nil {
		return err
	}
	q.offset, q.count = end, q.count-gone
	if q.dropped != nil {
		q.dropped(gone)
	}
	return q.savePos()
}

// Peek returns whole lines from the head, at most maxBytes (or one line if
// that is longer), and the offset just after them for Ack.
func (q *Queue) Peek(maxBytes int) ([]byte, int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(q.size-q.offset, int64(maxBytes))
	buf := make([]byte, n)
	if _, err := q.f.ReadAt(buf, q.offset); err != nil && err != io.EOF {
		return nil, 0, err
	}
	cut := bytes.LastIndexByte(buf, '\n') + 1
	if cut == 0 && n > 0 { // one line longer than maxBytes
		rest, err := io.ReadAll(io.NewSectionReader(q.f, q.offset, q.size-q.offset))
		if err != nil {
			return nil, 0, err
		}
		cut, buf = bytes.IndexByte(rest, '\n')+1, rest
	}
	return buf[:cut], q.offset + int64(cut), nil
}

// Ack marks everything before end as sent.
func (q *Queue) Ack(end int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if end <= q.offset { // dropped meanwhile
		return nil
	}
	sent, err := q.countLines(q.offset, end)
	if err != nil {
		return err
	}
	q.offset, q.count = end, q.count-sent
	switch {
	case q.offset == q.size:
		// All sent: empty the file where it is. A crash before queue.pos
		// is written leaves an offset past the end, which OpenQueue clamps.
		if err := q.f.Truncate(0); err != nil {
			return err
		}
		q.offset, q.size = 0, 0
	case q.offset >= compactAfter:
		return q.compact()
	}
	return q.savePos()
}

// compact copies the unsent tail into the next generation's file, then
// points queue.pos at it, then removes the old file: a crash at any step
// leaves queue.pos naming a whole file.
func (q *Queue) compact() error {
	next := q.gen + 1
	f, err := os.OpenFile(q.segment(next), os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.NewSectionReader(q.f, q.offset, q.size-q.offset))
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		return err
	}
	old := q.f
	q.f, q.gen, q.offset, q.size = f, next, 0, n
	if err := q.savePos(); err != nil {
		return err
	}
	old.Close()
	os.Remove(q.segment(next - 1))
	return nil
}

func (q *Queue) savePos() error {
	return atomicfile.Write(q.posPath(), []byte(fmt.Sprintf("%d %d\n", q.gen, q.offset)), 0o600)
}

// countLines counts the newlines in [from, to) of the queue file.
func (q *Queue) countLines(from, to int64) (int, error) {
	if to <= from {
		return 0, nil
	}
	raw, err := io.ReadAll(io.NewSectionReader(q.f, from, to-from))
	return strings.Count(string(raw), "\n"), err
}

// Close syncs and closes the queue file.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return errors.Join(q.f.Sync(), q.f.Close())
}
