// SPDX-License-Identifier: Apache-2.0

package names

import (
	"fmt"
	"strings"
)

const (
	maxEmailLen = 254 // RFC 5321 path limit less the angle brackets
	maxLocalLen = 64
)

// ParseEmail checks an address and returns it normalised: lowercase, its
// domain in punycode. The local part may hold letters, digits and
// !#$%&'*+/=?^_`{|}~.- (RFC 5322 dot-atom); quoted local parts are refused.
func ParseEmail(raw string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if len(s) > maxEmailLen {
		return "", emailTooLong()
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", invalid("email needs an '@'")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocalPart(local); err != nil {
		return "", err
	}
	name, err := hostName(strings.TrimSuffix(domain, "."))
	if err != nil {
		return "", invalid("email domain: " + err.Reason)
	}
	out := local + "@" + name
	if len(out) > maxEmailLen {
		return "", emailTooLong()
	}
	return out, nil
}

func emailTooLong() *Error {
	return invalid(fmt.Sprintf("email longer than %d characters", maxEmailLen))
}

// checkLocalPart checks what comes before the '@'.
func checkLocalPart(local string) *Error {
	switch {
	case local == "":
		return invalid("email has nothing before the '@'")
	case len(local) > maxLocalLen:
		return invalid(fmt.Sprintf("email local part longer than %d characters", maxLocalLen))
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return invalid("email local part has a misplaced '.'")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+/=?^_`{|}~.-", c) >= 0) {
			return invalid("email local part has a character that is not allowed")
		}
	}
	return nil
}
