// SPDX-License-Identifier: Apache-2.0

// Package ports holds the one rule for reading a list of TCP ports and
// ranges: which ports a public target may be watched on
// (KEYCHEST_MONITOR_PORTS, so that "add domain" cannot turn the monitor
// into a port scanner of other people's hosts), and which ports
// keychest-amp tunnels to (--tunnel-ports).
package ports

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Default is the list used when KEYCHEST_MONITOR_PORTS is not set: HTTPS,
// SMTPS, LDAPS, DNS over TLS, IMAPS, POP3S, SIP over TLS, the Kubernetes
// API and the usual alternative HTTPS ports.
const Default = "443,465,636,853,993,995,5061,6443,8443,9443"

// Everything is the list that allows every port, as tests on high
// loopback ports need.
const Everything = "1-65535"

// Range is the ports from Lo to Hi, both included.
type Range struct{ Lo, Hi int }

// Set is a parsed list of ports: sorted ranges that neither overlap nor
// touch. The zero Set allows nothing; Parse never returns it.
type Set struct{ ranges []Range }

// DefaultSet is Default, parsed.
func DefaultSet() Set {
	s, err := Parse(Default)
	if err != nil {
		panic("ports: Default does not parse: " + err.Error())
	}
	return s
}

// Parse reads a list of ports ("443") and ranges ("8000-8999") separated
// by commas or blanks. Every port must be from 1 to 65535, written in
// decimal digits only; a range may not run backwards; the list may not be
// empty.
func Parse(list string) (Set, error) {
	var rs []Range
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		r, err := parseRange(f)
		if err != nil {
			return Set{}, err
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return Set{}, fmt.Errorf("the port list is empty: name at least one port (%s allows every port)", Everything)
	}
	return Set{ranges: merge(rs)}, nil
}

// parseRange reads "443" or "8000-8999".
func parseRange(f string) (Range, error) {
	lo, hi, isRange := strings.Cut(f, "-")
	if !isRange {
		hi = lo
	}
	a, errA := port(lo)
	b, errB := port(hi)
	switch {
	case errA != nil || errB != nil:
		return Range{}, fmt.Errorf("%q is not a port (1-65535) or a range of ports like 8000-8999", f)
	case a > b:
		return Range{}, fmt.Errorf("%q runs backwards: write the lower port first", f)
	}
	return Range{Lo: a, Hi: b}, nil
}

// port reads one port number: decimal digits only, 1 to 65535.
func port(s string) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" || len(s) > 5 {
		return 0, fmt.Errorf("not a port")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("not a port")
	}
	return n, nil
}

// merge sorts ranges and joins those that overlap or touch.
func merge(rs []Range) []Range {
	slices.SortFunc(rs, func(a, b Range) int { return a.Lo - b.Lo })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Lo <= last.Hi+1 {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Allows reports whether port is in the set.
func (s Set) Allows(port int) bool {
	for _, r := range s.ranges {
		if port >= r.Lo && port <= r.Hi {
			return true
		}
	}
	return false
}

// IsZero reports whether s is the zero Set (nothing parsed).
func (s Set) IsZero() bool { return len(s.ranges) == 0 }

// String is the set in its canonical form: "443,465,8000-8999".
func (s Set) String() string {
	parts := make([]string, len(s.ranges))
	for i, r := range s.ranges {
		parts[i] = strconv.Itoa(r.Lo)
		if r.Hi != r.Lo {
			parts[i] += "-" + strconv.Itoa(r.Hi)
		}
	}
	return strings.Join(parts, ",")
}

// Decode implements envconfig.Decoder, so that a configuration struct can
// hold a Set read from the environment.
func (s *Set) Decode(v string) error {
	p, err := Parse(v)
	if err != nil {
		return err
	}
	*s = p
	return nil
}
