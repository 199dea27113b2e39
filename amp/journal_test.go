// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/acme"
)

func readEnvelopes(t *testing.T, path string) []acme.Envelope {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []acme.Envelope
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e acme.Envelope
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func TestJournalIDsIncreaseAcrossRestartsAndTornLinesAreCut(t *testing.T) {
	dir := t.TempDir()
	cfg := JournalConfig{File: filepath.Join(dir, "log", "audit.json"), StateDir: dir, Proxy: "p@amp.keychest.net",
		Host: "h", IP: "127.0.0.1", Version: "v"}
	ev := Event{Msg: "new-nonce", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Params: acme.Params{Code: 200}}
	j, err := OpenJournal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := j.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	// A crash in the middle of a line.
	f, _ := os.OpenFile(cfg.File, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"msg":"new-ord`)
	f.Close()
	// The id reservation lost too: the file alone carries the ids on.
	os.Remove(filepath.Join(dir, "journal.id"))
	if j, err = OpenJournal(cfg); err != nil {
		t.Fatal(err)
	}
	j.Write(ev)
	j.Close()
	// Local file gone: the reservation carries them on.
	os.Remove(cfg.File)
	j, _ = OpenJournal(cfg)
	j.Write(ev)
	j.Close()
	raw, _ := os.ReadFile(cfg.File)
	if !strings.HasSuffix(string(raw), "}\n") {
		t.Fatalf("file does not end with a whole line: %q", raw)
	}
	got := readEnvelopes(t, cfg.File)
	if len(got) != 1 || got[0].ID <= 4 {
		t.Fatalf("after the file was removed: %+v", got)
	}
	e := got[0]
	if e.Msg != "new-nonce" || e.Time != "2026-01-02 03:04:05" || e.Proxy != cfg.Proxy || e.Host != "h" || e.IP != "127.0.0.1" ||
		e.Version != "v" || e.LogTime == "" || e.Params.Code != 200 {
		t.Errorf("envelope: %+v", e)
	}
}

func TestJournalKeepsOrderInFileAndQueue(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(filepath.Join(dir, "queue"), 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := OpenJournal(JournalConfig{File: filepath.Join(dir, "audit.json"), StateDir: dir, Queue: q})
	for range 5 {
		j.Write(Event{Msg: "order"})
	}
	file := readEnvelopes(t, filepath.Join(dir, "audit.json"))
	batch, _, _ := q.Peek(1 << 20)
	lines := strings.Split(strings.TrimSpace(string(batch)), "\n")
	for i, l := range lines {
		var e acme.Envelope
		json.Unmarshal([]byte(l), &e)
		if e.ID != file[i].ID || e.Backlog != i || (i > 0 && e.ID != file[i-1].ID+1) {
			t.Errorf("line %d: queue %+v, file %+v", i, e, file[i])
		}
	}
}
