// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"strings"
	"testing"
)

func TestReplyBytes(t *testing.T) {
	tests := []struct {
		r    Reply
		want string
	}{
		{OK("pong"), "status ok 200 pong\n"},
		{Reply{Data: "28a7e10c-1fea", Code: CodeOK, Text: "new api key"}, "data 28a7e10c-1fea\nstatus ok 200 new api key\n"},
		{Fail(Errorf(CodeConflict, "taken")), "status error 409 taken\n"},
		// A value echoed from a client cannot add a line.
		{Fail(Errorf(CodeBadRequest, "bad %q", "a\nstatus ok 200 b")), "status error 400 bad \"a\\nstatus ok 200 b\"\n"},
		{Fail(Errorf(CodeBadRequest, "x\ny\rz")), "status error 400 x?y?z\n"},
	}
	for _, tt := range tests {
		if got := string(tt.r.Bytes()); got != tt.want {
			t.Errorf("Bytes() = %q, want %q", got, tt.want)
		}
	}
}

func TestReplyFitsOneRead(t *testing.T) {
	long := strings.Repeat("é", 2000)
	for _, r := range []Reply{
		{Data: long, Code: CodeOK, Text: long},
		{Code: CodeBadRequest, Text: long},
		{Data: strings.Repeat("d", 5000), Code: CodeOK, Text: "t"},
	} {
		b := r.Bytes()
		if len(b) > MaxReplyBytes {
			t.Errorf("reply of %d bytes, limit %d", len(b), MaxReplyBytes)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if last := lines[len(lines)-1]; !strings.HasPrefix(last, "status ") {
			t.Errorf("last line %q is not a status line", last[:20])
		}
		if !strings.HasSuffix(string(b), "\n") {
			t.Error("reply does not end in a newline")
		}
	}
}

func TestRetryable(t *testing.T) {
	for code, want := range map[int]bool{200: false, 400: false, 401: false, 408: true, 409: false, 413: false, 429: true, 500: false, 503: true} {
		if Retryable(code) != want {
			t.Errorf("Retryable(%d) = %v", code, !want)
		}
	}
}
