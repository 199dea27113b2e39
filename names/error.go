// SPDX-License-Identifier: Apache-2.0

package names

// Error is why a name was refused. Its text is the reason as the client
// reads it.
type Error struct {
	Reason string
}

func (e *Error) Error() string { return e.Reason }

// invalid returns an *Error with reason.
func invalid(reason string) *Error { return &Error{Reason: reason} }
