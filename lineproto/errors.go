// SPDX-License-Identifier: Apache-2.0

package lineproto

import "fmt"

// Status codes used on the wire. Each code always means the same thing;
// docs/protocol.md has the table, including which ones are worth retrying.
const (
	CodeOK          = 200 // the command succeeded (and any write is committed)
	CodeBadRequest  = 400 // the line or one of its values is malformed
	CodeUnknownKey  = 401 // the API key is not known to the server
	CodeForbidden   = 403 // the key or its account may not do this
	CodeNotFound    = 404 // the thing named is not there
	CodeTimeout     = 408 // the connection was idle or open too long
	CodeConflict    = 409 // the request contradicts what is stored
	CodeLineTooLong = 413 // the line is longer than the limit
	CodeTooMany     = 429 // a per-key or per-address limit was reached
	CodeInternal    = 500 // a bug on the server; the detail is in its log
	CodeUnavailable = 503 // the server is overloaded, stopping, or its database is down
)

// Error is a failure that goes straight to the wire as
// "status error <Code> <Text>". Handlers return it; anything else they
// return is reported as a 500 and logged.
type Error struct {
	Code int
	Text string
}

// Errorf builds an Error with a formatted text.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Text: fmt.Sprintf(format, args...)}
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Text) }

// Retryable reports whether sending the same command again later may
// succeed: timeouts, rate limits and unavailability are passing states.
func (e *Error) Retryable() bool { return Retryable(e.Code) }

// Retryable reports whether a status code describes a passing condition.
func Retryable(code int) bool {
	return code == CodeTimeout || code == CodeTooMany || code == CodeUnavailable
}
