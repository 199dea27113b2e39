// SPDX-License-Identifier: Apache-2.0

package lineproto

import "bytes"

// Framer cuts the byte stream of one connection into lines. A line ends at
// LF; a CR right before the LF is dropped. Bytes that never get a newline
// are taken as a line only when the caller says so (TakePartial), after a
// quiet period or at end of input: the seed's client sends with "echo -ne".
type Framer struct {
	buf []byte
	max int
}

// NewFramer returns a Framer that refuses lines longer than max bytes.
func NewFramer(max int) *Framer { return &Framer{max: max} }

// Write appends bytes received from the client.
func (f *Framer) Write(p []byte) { f.buf = append(f.buf, p...) }

// Next returns the next complete line without its terminator. It reports
// false when no complete line is buffered. A line over the limit, complete
// or not, is a 413 error; the connection should be closed after it. The
// returned line is valid until the next call on f.
func (f *Framer) Next() ([]byte, bool, *Error) {
	i := bytes.IndexByte(f.buf, '\n')
	if i < 0 {
		// A CR may still be followed by its LF, so it does not count yet.
		if n := len(f.buf); n > f.max+1 || (n == f.max+1 && f.buf[n-1] != '\r') {
			return nil, false, f.tooLong()
		}
		return nil, false, nil
	}
	line := f.buf[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) > f.max {
		return nil, false, f.tooLong()
	}
	f.buf = f.buf[i+1:]
	return line, true, nil
}

// Partial reports whether bytes of an unfinished line are buffered.
func (f *Framer) Partial() bool { return len(f.buf) > 0 }

// TakePartial returns the buffered bytes of an unfinished line as a whole
// line, dropping one trailing CR, and empties the buffer.
func (f *Framer) TakePartial() []byte {
	line := f.buf
	f.buf = f.buf[len(f.buf):]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line
}

// Buffered returns how many bytes are waiting to be framed.
func (f *Framer) Buffered() int { return len(f.buf) }

func (f *Framer) tooLong() *Error {
	f.buf = nil
	return Errorf(CodeLineTooLong, "line longer than %d bytes", f.max)
}
