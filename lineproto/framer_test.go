// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"strings"
	"testing"
)

// drain feeds input to a Framer in chunks of size n and collects lines.
func drain(t *testing.T, input string, n, max int) (lines []string, partial string, err *Error) {
	t.Helper()
	f := NewFramer(max)
	for i := 0; i < len(input); i += n {
		f.Write([]byte(input[i:min(i+n, len(input))]))
		for {
			line, ok, ferr := f.Next()
			if ferr != nil {
				return lines, "", ferr
			}
			if !ok {
				break
			}
			lines = append(lines, string(line))
		}
	}
	if f.Partial() {
		partial = string(f.TakePartial())
	}
	return lines, partial, nil
}

func TestFramerSplitsAnywhere(t *testing.T) {
	input := "command ping\ncommand apikey\r\n\r\ncommand add domain a.example apikey K\ncommand apikey"
	want := []string{"command ping", "command apikey", "", "command add domain a.example apikey K"}
	for n := 1; n <= len(input); n++ {
		lines, partial, err := drain(t, input, n, 1024)
		if err != nil {
			t.Fatalf("chunk %d: %v", n, err)
		}
		if strings.Join(lines, "|") != strings.Join(want, "|") {
			t.Fatalf("chunk %d: lines %q, want %q", n, lines, want)
		}
		// The line without a newline is not handed out by Next: only a
		// quiet period or EOF makes it a line.
		if partial != "command apikey" {
			t.Fatalf("chunk %d: partial %q", n, partial)
		}
	}
}

func TestFramerLineLimit(t *testing.T) {
	tests := []struct {
		input string
		ok    bool
	}{
		{strings.Repeat("a", 16) + "\n", true},
		{strings.Repeat("a", 16) + "\r\n", true}, // CR does not count
		{strings.Repeat("a", 17) + "\n", false},
		{strings.Repeat("a", 17), false}, // too long before any newline
		{strings.Repeat("a", 1<<20), false},
	}
	for _, tt := range tests {
		for _, n := range []int{1, 7, len(tt.input)} {
			_, _, err := drain(t, tt.input, n, 16)
			if (err == nil) != tt.ok {
				t.Errorf("input of %d bytes in chunks of %d: err %v, want ok=%v", len(tt.input), n, err, tt.ok)
			}
			if err != nil && err.Code != CodeLineTooLong {
				t.Errorf("code %d, want 413", err.Code)
			}
		}
	}
}

func TestFramerTakePartialDropsCR(t *testing.T) {
	f := NewFramer(64)
	f.Write([]byte("command ping\r"))
	if _, ok, _ := f.Next(); ok {
		t.Fatal("a line without LF came out of Next")
	}
	if got := string(f.TakePartial()); got != "command ping" {
		t.Fatalf("TakePartial = %q", got)
	}
	if f.Partial() || f.Buffered() != 0 {
		t.Fatal("buffer not empty after TakePartial")
	}
}

// FuzzFramer checks that framing in any chunking gives the same lines as
// framing all at once.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("command ping\r\ncommand apikey\n"), uint8(1))
	f.Add([]byte("\n\n\r\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, input []byte, chunk uint8) {
		n := int(chunk%32) + 1
		whole, wp, werr := drain(t, string(input), len(input)+1, 64)
		split, sp, serr := drain(t, string(input), n, 64)
		if (werr == nil) != (serr == nil) {
			t.Fatalf("errors differ: %v vs %v", werr, serr)
		}
		if werr == nil && (strings.Join(whole, "\n") != strings.Join(split, "\n") || wp != sp) {
			t.Fatalf("chunk %d: %q %q vs %q %q", n, whole, wp, split, sp)
		}
	})
}
