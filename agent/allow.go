// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bufio"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// MaxAllowRules bounds allow.conf, and MaxAllowLine one of its lines.
const (
	MaxAllowRules = 1000
	MaxAllowLine  = 1024
)

// PortRange is an inclusive range of TCP ports; a single port has Lo == Hi.
type PortRange struct{ Lo, Hi uint16 }

// Rule is one "allow CIDR PORTS [NAME-PATTERN]" line of allow.conf.
type Rule struct {
	Net   netip.Prefix
	Ports []PortRange
	// Name, when set, is a lower-case name pattern the job's name must
	// match: "*" any name, "*.corp.example" any name under corp.example
	// (not corp.example itself), else the exact name.
	Name string
	Line int // where the rule is in allow.conf
}

// Allow is a parsed allow.conf. Its zero value allows nothing: an agent
// denies by default.
type Allow struct{ Rules []Rule }

// ParseAllow parses the text of allow.conf: one rule a line, "#" starts a
// comment, blank lines are skipped. Any malformed line fails the whole
// file, with its line number: an agent never runs on half a policy.
func ParseAllow(text string) (Allow, error) {
	var a Allow
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, MaxAllowLine+1), MaxAllowLine+1)
	n := 0
	for sc.Scan() {
		n++
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		r, err := parseRule(fields)
		if err != nil {
			return Allow{}, fmt.Errorf("allow.conf line %d: %w", n, err)
		}
		r.Line = n
		if len(a.Rules) == MaxAllowRules {
			return Allow{}, fmt.Errorf("allow.conf line %d: more than %d rules", n, MaxAllowRules)
		}
		a.Rules = append(a.Rules, r)
	}
	if err := sc.Err(); err != nil {
		return Allow{}, fmt.Errorf("allow.conf line %d: %w (at most %d bytes a line)", n+1, err, MaxAllowLine)
	}
	return a, nil
}

// parseRule parses the fields of one non-empty line.
func parseRule(f []string) (Rule, error) {
	if f[0] != "allow" {
		return Rule{}, fmt.Errorf("%q: a rule starts with \"allow\"", f[0])
	}
	if len(f) < 3 || len(f) > 4 {
		return Rule{}, fmt.Errorf("want \"allow CIDR PORTS [NAME-PATTERN]\"")
	}
	pfx, err := netip.ParsePrefix(f[1])
	if err != nil {
		return Rule{}, fmt.Errorf("CIDR %q: %v", f[1], err)
	}
	if pfx.Addr().Zone() != "" || pfx != pfx.Masked() {
		return Rule{}, fmt.Errorf("CIDR %q: host bits set or zone given (did you mean %s?)", f[1], pfx.Masked())
	}
	r := Rule{Net: pfx}
	if r.Ports, err = parsePorts(f[2]); err != nil {
		return Rule{}, err
	}
	if len(f) == 4 {
		if r.Name, err = parsePattern(f[3]); err != nil {
			return Rule{}, err
		}
	}
	return r, nil
}

// parsePorts parses "443,636,8000-8100".
func parsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			hi = lo
		}
		l, err1 := port(lo)
		h, err2 := port(hi)
		if err1 != nil || err2 != nil || l > h {
			return nil, fmt.Errorf("ports %q: want a comma list of ports 1-65535 or ranges such as 8000-8100", s)
		}
		out = append(out, PortRange{l, h})
	}
	return out, nil
}

func port(s string) (uint16, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a port")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("not a port")
	}
	return uint16(n), nil
}

// parsePattern checks a name pattern: "*", "*.name" or a name, in the
// letters, digits, hyphens and dots of DNS.
func parsePattern(s string) (string, error) {
	p := strings.ToLower(s)
	if p == "*" {
		return p, nil
	}
	name := strings.TrimPrefix(p, "*.")
	bad := name == "" || len(name) > 253 || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") ||
		strings.Contains(name, "..") || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-._") != ""
	if bad {
		return "", fmt.Errorf("name pattern %q: want *, *.domain or a host name", s)
	}
	return p, nil
}

// Permits reports whether a connection to addr:port, made for the job's
// name (empty for a job given as an address), is allowed, and by which
// rule (its line in allow.conf; 0 when none).
func (a Allow) Permits(addr netip.Addr, port int, name string) (bool, int) {
	addr = addr.Unmap().WithZone("")
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, r := range a.Rules {
		if r.Net.Contains(addr) && r.hasPort(port) && r.matches(name) {
			return true, r.Line
		}
	}
	return false, 0
}

func (r Rule) hasPort(p int) bool {
	for _, pr := range r.Ports {
		if p >= int(pr.Lo) && p <= int(pr.Hi) {
			return true
		}
	}
	return false
}

func (r Rule) matches(name string) bool {
	switch {
	case r.Name == "" || r.Name == "*":
		return true
	case strings.HasPrefix(r.Name, "*."):
		return strings.HasSuffix(name, r.Name[1:]) && len(name) > len(r.Name)-1
	}
	return name == r.Name
}

// String is the rule as allow.conf would spell it.
func (r Rule) String() string {
	ports := make([]string, len(r.Ports))
	for i, p := range r.Ports {
		ports[i] = strconv.Itoa(int(p.Lo))
		if p.Hi != p.Lo {
			ports[i] += "-" + strconv.Itoa(int(p.Hi))
		}
	}
	s := "allow " + r.Net.String() + " " + strings.Join(ports, ",")
	if r.Name != "" {
		s += " " + r.Name
	}
	return s
}

// Strings lists the rules as allow.conf would spell them.
func (a Allow) Strings() []string {
	out := make([]string, len(a.Rules))
	for i, r := range a.Rules {
		out[i] = r.String()
	}
	return out
}
