package handlers

import (
	"strings"

	"github.com/keychest/keychest-lined/lineproto"
)

const (
	maxEmailLen = 254 // RFC 5321 path limit less the angle brackets
	maxLocalLen = 64
)

// ParseEmail checks an address and returns it normalised: lowercase, its
// domain in punycode. The local part may hold letters, digits and
// !#$%&'*+/=?^_`{|}~.- (RFC 5322 dot-atom); quoted local parts are refused.
func ParseEmail(raw string) (string, *lineproto.Error) {
	s := strings.ToLower(strings.TrimSpace(raw))
	if len(s) > maxEmailLen {
		return "", lineproto.Errorf(lineproto.CodeBadRequest, "email longer than %d characters", maxEmailLen)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return "", lineproto.Errorf(lineproto.CodeBadRequest, "email needs an '@'")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocalPart(local); err != nil {
		return "", err
	}
	name, err := hostName(strings.TrimSuffix(domain, "."))
	if err != nil {
		return "", lineproto.Errorf(lineproto.CodeBadRequest, "email domain: %s", err.Text)
	}
	out := local + "@" + name
	if len(out) > maxEmailLen {
		return "", lineproto.Errorf(lineproto.CodeBadRequest, "email longer than %d characters", maxEmailLen)
	}
	return out, nil
}

func checkLocalPart(local string) *lineproto.Error {
	switch {
	case local == "":
		return lineproto.Errorf(lineproto.CodeBadRequest, "email has nothing before the '@'")
	case len(local) > maxLocalLen:
		return lineproto.Errorf(lineproto.CodeBadRequest, "email local part longer than %d characters", maxLocalLen)
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return lineproto.Errorf(lineproto.CodeBadRequest, "email local part has a misplaced '.'")
	}
	for i := 0; i < len(local); i++ {
		c := local[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+/=?^_`{|}~.-", c) >= 0) {
			return lineproto.Errorf(lineproto.CodeBadRequest, "email local part has a character that is not allowed")
		}
	}
	return nil
}
