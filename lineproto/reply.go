// SPDX-License-Identifier: Apache-2.0

package lineproto

import "strconv"

// MaxReplyBytes bounds one rendered reply. The seed's client reads once
// with "dd bs=1000 count=1", so a whole reply must fit in fewer than 1000
// bytes or its status line is cut off.
const MaxReplyBytes = 999

// Reply is the answer to one request as it goes on the wire: an optional
// data line and a status line. Whether the connection ends after it is the
// server's business (see Bye); what goes in the log comes from the Request.
type Reply struct {
	Data string // the value of the "data" line; empty means no data line
	Code int    // status code, CodeOK for success
	Text string // human-readable status text

	close bool // the server closes the connection once the reply is written
}

// OK returns a successful reply with the given status text.
func OK(text string) Reply { return Reply{Code: CodeOK, Text: text} }

// Bye returns a successful reply after which the server closes the
// connection (gracefully: the client reads it, then the end of stream).
func Bye(text string) Reply { return Reply{Code: CodeOK, Text: text, close: true} }

// closing returns r marked to close the connection once written.
func (r Reply) closing() Reply {
	r.close = true
	return r
}

// Fail returns the reply that reports err.
func Fail(err *Error) Reply { return Reply{Code: err.Code, Text: err.Text} }

// Bytes renders the reply as it goes on the wire.
func (r Reply) Bytes() []byte { return r.AppendTo(nil) }

// AppendTo renders the reply onto b: "data <value>\n" when there is data,
// then "status ok 200 <text>\n" or "status error <code> <text>\n". Control
// bytes in the data or text become '?', so a value echoed from a client
// can never add a line, and the whole reply is cut to MaxReplyBytes.
func (r Reply) AppendTo(b []byte) []byte {
	start := len(b)
	status := "status error "
	if r.Code == CodeOK {
		status = "status ok "
	}
	tail := len(status) + 4 + 1 // "status ok " + "200 " + "\n"
	if r.Data != "" {
		b = append(b, "data "...)
		b = appendClean(b, r.Data, MaxReplyBytes-tail-len("data \n")-8)
		b = append(b, '\n')
	}
	b = append(b, status...)
	b = strconv.AppendInt(b, int64(r.Code), 10)
	b = append(b, ' ')
	b = appendClean(b, r.Text, MaxReplyBytes-(len(b)-start)-1)
	return append(b, '\n')
}

// appendClean appends s with control bytes replaced, at most limit bytes.
// A cut never splits a UTF-8 sequence.
func appendClean(b []byte, s string, limit int) []byte {
	if limit < 0 {
		limit = 0
	}
	if len(s) > limit {
		cut := limit
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut]
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			c = '?'
		}
		b = append(b, c)
	}
	return b
}
