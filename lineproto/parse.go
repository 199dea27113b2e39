// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"net/netip"
	"time"
	"unicode/utf8"
)

// Request is one parsed command line: the verb named by "command" and the
// other name/value pairs in the order they were sent.
type Request struct {
	Verb   string
	Args   []Arg
	Remote netip.Addr // the client's address, set by the server
	// Read is when the server took the line from the connection to run
	// it, set by the server: a blocking request's deadline counts from
	// here, so time spent waiting for a worker counts too.
	Read time.Time
	// Subject is what the command acted on, safe to log (a key's prefix,
	// say): set by the handler, written in the command's log entry.
	Subject string
}

// Arg is one name/value pair of a request. Names are lowercase.
type Arg struct {
	Name  string
	Value string
}

// Get returns the value sent for name, and whether it was sent.
func (r *Request) Get(name string) (string, bool) {
	for _, a := range r.Args {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

// ParseLine parses one line (without its terminator) of whitespace-separated
// name/value pairs, for example "command add domain example.com apikey K".
// Names are case-insensitive and may come in any order; "command" names the
// verb, which is lowercased. It returns a 400 error for a control byte,
// invalid UTF-8, a name without a value, a malformed or repeated name, or a
// missing "command". An empty line yields a Request with an empty Verb.
func ParseLine(line []byte) (Request, *Error) {
	var req Request
	if err := checkBytes(line); err != nil {
		return req, err
	}
	tokens := fields(line)
	if len(tokens) == 0 {
		return req, nil
	}
	if len(tokens)%2 == 1 {
		return req, Errorf(CodeBadRequest, "name %q has no value", clip(tokens[len(tokens)-1]))
	}
	seenCommand := false
	req.Args = make([]Arg, 0, len(tokens)/2-1)
	for i := 0; i < len(tokens); i += 2 {
		name, ok := lowerName(tokens[i])
		if !ok {
			return Request{}, Errorf(CodeBadRequest, "%q is not a valid name", clip(tokens[i]))
		}
		value := string(tokens[i+1])
		if name == "command" {
			if seenCommand {
				return Request{}, Errorf(CodeBadRequest, "duplicate name %q", name)
			}
			seenCommand = true
			v, ok := lowerName(tokens[i+1])
			if !ok {
				return Request{}, Errorf(CodeBadRequest, "%q is not a command: send \"command help\"", clip(tokens[i+1]))
			}
			req.Verb = v
			continue
		}
		if _, dup := req.Get(name); dup {
			return Request{}, Errorf(CodeBadRequest, "duplicate name %q", name)
		}
		req.Args = append(req.Args, Arg{Name: name, Value: value})
	}
	if !seenCommand {
		return Request{}, Errorf(CodeBadRequest, "missing \"command\": send for example \"command help\"")
	}
	return req, nil
}

// checkBytes rejects control bytes (other than space and tab) and invalid UTF-8.
func checkBytes(line []byte) *Error {
	for i, c := range line {
		if (c < 0x20 && c != ' ' && c != '\t') || c == 0x7f {
			return Errorf(CodeBadRequest, "control byte 0x%02x at column %d", c, i+1)
		}
	}
	if !utf8.Valid(line) {
		return Errorf(CodeBadRequest, "line is not valid UTF-8")
	}
	return nil
}

// fields splits line at runs of spaces and tabs.
func fields(line []byte) [][]byte {
	var out [][]byte
	start := -1
	for i, c := range line {
		blank := c == ' ' || c == '\t'
		switch {
		case blank && start >= 0:
			out = append(out, line[start:i])
			start = -1
		case !blank && start < 0:
			start = i
		}
	}
	if start >= 0 {
		out = append(out, line[start:])
	}
	return out
}

// lowerName lowercases a name made of ASCII letters, digits, '_' and '-'.
// It reports false for any other byte or a name longer than 32 bytes.
func lowerName(tok []byte) (string, bool) {
	if len(tok) > 32 {
		return "", false
	}
	var buf [32]byte
	for i, c := range tok {
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return "", false
		}
		buf[i] = c
	}
	return string(buf[:len(tok)]), true
}

// clip shortens a token echoed back in an error text.
func clip(tok []byte) string {
	if len(tok) > 40 {
		cut := 40
		for cut > 0 && tok[cut]&0xC0 == 0x80 {
			cut--
		}
		return string(tok[:cut]) + "..."
	}
	return string(tok)
}
