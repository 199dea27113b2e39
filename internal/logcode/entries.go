// SPDX-License-Identifier: Apache-2.0

package logcode

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// CheckEntries reads a JSON log, one entry a line, as the server writes
// it, and counts the entries of each code. Its error names every entry
// that is not JSON, lacks a code, or lacks an RFC 3339 event_time. Tests
// run it over what a real server logged.
func CheckEntries(log []byte) (map[string]int, error) {
	seen := map[string]int{}
	var errs []error
	lines := bufio.NewScanner(bytes.NewReader(log))
	lines.Buffer(nil, 1<<20)
	for lines.Scan() {
		var e struct {
			Code      string `json:"code"`
			EventTime string `json:"event_time"`
		}
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			errs = append(errs, fmt.Errorf("not JSON: %s", lines.Bytes()))
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, e.EventTime); e.Code == "" || err != nil {
			errs = append(errs, fmt.Errorf("no code or event_time: %s", lines.Bytes()))
		}
		seen[e.Code]++
	}
	return seen, errors.Join(append(errs, lines.Err())...)
}

// Sink is a log destination safe for a server's goroutines, for tests that
// read back what a server logged (with CheckEntries, for one).
type Sink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *Sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *Sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
