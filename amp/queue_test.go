// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func line(i int) []byte { return []byte(fmt.Sprintf(`{"id":%d}`+"\n", i)) }

func TestQueueSurvivesRestartsAndResendsOnlyUnacked(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(dir, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		q.Append(line(i))
	}
	batch, end, _ := q.Peek(len(line(1)) * 4) // four whole lines fit
	if strings.Count(string(batch), "\n") != 4 {
		t.Fatalf("batch: %q", batch)
	}
	q.Ack(end)
	if q.Len() != 6 {
		t.Fatalf("len %d", q.Len())
	}
	q.Append([]byte(`{"id":11}`)) // a torn line: no newline
	q.Close()

	q, err = OpenQueue(dir, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	batch, end, _ = q.Peek(1 << 20)
	if want := string(line(5)) + string(line(6)); !strings.HasPrefix(string(batch), want) || q.Len() != 6 {
		t.Fatalf("after restart: len %d batch %q", q.Len(), batch)
	}
	q.Ack(end)
	if q.Len() != 0 {
		t.Fatalf("len after ack %d", q.Len())
	}
	names, _ := filepath.Glob(filepath.Join(dir, "queue.*.jsonl"))
	if st, _ := os.Stat(names[0]); len(names) != 1 || st.Size() != 0 {
		t.Errorf("drained queue not compacted: %v", names)
	}
	q.Append(line(12))
	q.Close()
	q, _ = OpenQueue(dir, 1000, nil)
	if batch, _, _ = q.Peek(1 << 20); string(batch) != string(line(12)) {
		t.Errorf("after compaction and restart: %q", batch)
	}
}

func TestQueueCapDropsOldestAndSaysHowMany(t *testing.T) {
	dropped := 0
	q, err := OpenQueue(t.TempDir(), 20, func(n int) { dropped += n })
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		q.Append(line(i))
		if q.Len() > 20 {
			t.Fatalf("len %d over the cap", q.Len())
		}
	}
	batch, _, _ := q.Peek(1 << 20)
	if dropped != 100-q.Len() || !strings.HasSuffix(string(batch), string(line(100))) ||
		strings.Count(string(batch), "\n") != q.Len() {
		t.Errorf("dropped %d, len %d, batch %q", dropped, q.Len(), batch)
	}
}

func TestQueueCompactsAfterManySentBytes(t *testing.T) {
	dir := t.TempDir()
	q, _ := OpenQueue(dir, 100000, nil)
	pad := strings.Repeat("x", 1000)
	for i := 1; i <= 5000; i++ {
		q.Append([]byte(fmt.Sprintf(`{"id":%d,"pad":"%s"}`+"\n", i, pad)))
	}
	for q.Len() > 10 {
		batch, end, _ := q.Peek(64 << 10)
		if q.Len()-strings.Count(string(batch), "\n") < 10 { // keep the last few unsent
			break
		}
		q.Ack(end)
	}
	left := q.Len()
	q.Close()
	names, _ := filepath.Glob(filepath.Join(dir, "queue.*.jsonl"))
	if len(names) != 1 || names[0] == filepath.Join(dir, "queue.0.jsonl") {
		t.Fatalf("not compacted: %v", names)
	}
	if st, _ := os.Stat(names[0]); st.Size() > 4<<20 {
		t.Errorf("compacted file holds %d bytes", st.Size())
	}
	q, _ = OpenQueue(dir, 100000, nil)
	batch, _, _ := q.Peek(16 << 20)
	if q.Len() != left || !strings.HasSuffix(string(batch), fmt.Sprintf(`{"id":5000,"pad":"%s"}`+"\n", pad)) {
		t.Errorf("after compaction: len %d want %d", q.Len(), left)
	}
}
