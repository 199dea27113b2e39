// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// MaxDiscoverSources bounds discover.conf's sources.
const MaxDiscoverSources = 100

// TSIG names a TSIG key: its name, algorithm and the file that holds its
// base64 secret (relative to DIR unless absolute). The secret itself is
// read at each transfer and never logged nor sent.
type TSIG struct {
	Name, Alg, SecretFile string
}

// ZoneSource is one "zone NAME server HOST:PORT [tsig NAME:ALG:FILE]
// [ports P,P]" line of discover.conf.
type ZoneSource struct {
	Zone   string // fully qualified, lower case, with its final dot
	Server string // host:port of a server that allows the transfer
	TSIG   *TSIG
	Ports  []int // the ports each name is proposed with (default 443)
	Line   int
}

// LDAPSource is one "ldap URL base DN [bind DN PASSWORD-FILE] [filter F]
// [starttls] [ca FILE]" line of discover.conf. A DN or filter with spaces
// is written in double quotes. StartTLS (ldap:// only) upgrades the
// connection before the bind; CAFile (relative to DIR unless absolute)
// holds the PEM CAs trusted for the server instead of the system's roots.
type LDAPSource struct {
	URL, Base, BindDN, PasswordFile, Filter string
	StartTLS                                bool
	CAFile                                  string
	Line                                    int
}

// Discover is a parsed discover.conf. Its zero value discovers nothing.
type Discover struct {
	Zones   []ZoneSource
	LDAP    []LDAPSource
	AutoAdd bool // "auto_add yes": the service adds what is found directly
}

// tsigAlgs are the TSIG algorithms accepted, by the names BIND, NSD and
// Knot use.
var tsigAlgs = map[string]string{
	"hmac-sha1": dns.HmacSHA1, "hmac-sha224": dns.HmacSHA224, "hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384, "hmac-sha512": dns.HmacSHA512,
}

// ParseDiscover parses the text of discover.conf: one source a line, "#"
// starts a comment. Any malformed line fails the whole file, with its
// line number.
func ParseDiscover(text string) (Discover, error) {
	var d Discover
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, MaxAllowLine), MaxAllowLine)
	n := 0
	for sc.Scan() {
		n++
		if err := d.parseLine(sc.Text(), n); err != nil {
			return Discover{}, fmt.Errorf("discover.conf line %d: %w", n, err)
		}
		if len(d.Zones)+len(d.LDAP) > MaxDiscoverSources {
			return Discover{}, fmt.Errorf("discover.conf line %d: more than %d sources", n, MaxDiscoverSources)
		}
	}
	if err := sc.Err(); err != nil {
		return Discover{}, fmt.Errorf("discover.conf line %d: %w (at most %d bytes a line)", n+1, err, MaxAllowLine)
	}
	return d, nil
}

func (d *Discover) parseLine(line string, n int) error {
	f, err := splitQuoted(line)
	if err != nil || len(f) == 0 {
		return err
	}
	switch f[0] {
	case "zone":
		z, err := parseZone(f[1:])
		z.Line = n
		d.Zones = append(d.Zones, z)
		return err
	case "ldap":
		l, err := parseLDAP(f[1:])
		l.Line = n
		d.LDAP = append(d.LDAP, l)
		return err
	case "auto_add":
		if len(f) != 2 || (f[1] != "yes" && f[1] != "no") {
			return errors.New(`want "auto_add yes" or "auto_add no"`)
		}
		d.AutoAdd = f[1] == "yes"
		return nil
	}
	return fmt.Errorf("unknown source %q (want zone, ldap or auto_add)", f[0])
}

// splitQuoted splits on blanks; a double-quoted field may hold blanks
// and "#". Outside quotes, "#" starts a comment.
func splitQuoted(s string) ([]string, error) {
	var out []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" || s[0] == '#' {
			return out, nil
		}
		if s[0] == '"' {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, errors.New("unterminated quote")
			}
			out = append(out, s[1:end+1])
			s = s[end+2:]
			if s != "" && s[0] != ' ' && s[0] != '\t' {
				return nil, errors.New("text right after a closing quote")
			}
			continue
		}
		end := strings.IndexAny(s, " \t#")
		if end < 0 {
			end = len(s)
		}
		if strings.ContainsRune(s[:end], '"') {
			return nil, errors.New("a quote inside a field")
		}
		out = append(out, s[:end])
		s = s[end:]
	}
}

func parseZone(f []string) (ZoneSource, error) {
	z := ZoneSource{Ports: []int{443}}
	if len(f) < 3 || f[1] != "server" {
		return z, errors.New("want: zone NAME server HOST:PORT [tsig NAME:ALG:SECRET-FILE] [ports P,P]")
	}
	if _, ok := dns.IsDomainName(f[0]); !ok || strings.ContainsAny(f[0], "*\\") {
		return z, fmt.Errorf("zone %q: not a domain name", f[0])
	}
	z.Zone = dns.CanonicalName(f[0])
	host, port, err := net.SplitHostPort(f[2])
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		return z, fmt.Errorf("server %q: want HOST:PORT", f[2])
	}
	z.Server = f[2]
	seen := map[string]bool{}
	for rest := f[3:]; len(rest) > 0; rest = rest[2:] {
		if len(rest) < 2 || seen[rest[0]] {
			return z, fmt.Errorf("option %q: missing value or given twice", rest[0])
		}
		seen[rest[0]] = true
		switch rest[0] {
		case "tsig":
			if z.TSIG, err = parseTSIG(rest[1]); err != nil {
				return z, err
			}
		case "ports":
			if z.Ports, err = parsePortList(rest[1]); err != nil {
				return z, err
			}
		default:
			return z, fmt.Errorf("unknown option %q (want tsig or ports)", rest[0])
		}
	}
	return z, nil
}

func parseTSIG(s string) (*TSIG, error) {
	p := strings.SplitN(s, ":", 3)
	if len(p) != 3 || p[2] == "" {
		return nil, fmt.Errorf("tsig %q: want NAME:ALG:SECRET-FILE", s)
	}
	if _, ok := dns.IsDomainName(p[0]); !ok || p[0] == "" || p[0] == "." {
		return nil, fmt.Errorf("tsig key name %q: not a domain name", p[0])
	}
	alg, ok := tsigAlgs[strings.ToLower(p[1])]
	if !ok {
		return nil, fmt.Errorf("tsig algorithm %q: want hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224 or hmac-sha1", p[1])
	}
	return &TSIG{Name: dns.CanonicalName(p[0]), Alg: alg, SecretFile: p[2]}, nil
}

// parsePortList parses "443,636": single ports, no ranges (each one is a
// proposal of its own).
func parsePortList(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("ports %q: want ports 1-65535, comma-separated", s)
		}
		out = append(out, n)
	}
	if len(out) > 16 {
		return nil, fmt.Errorf("ports %q: at most 16", s)
	}
	return out, nil
}

func parseLDAP(f []string) (LDAPSource, error) {
	var l LDAPSource
	if len(f) < 3 || f[1] != "base" {
		return l, errors.New(ldapSyntax)
	}
	u, err := url.Parse(f[0])
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" || u.User != nil {
		return l, fmt.Errorf("ldap URL %q: want ldap://host[:port] or ldaps://host[:port]", f[0])
	}
	l.URL, l.Base = f[0], f[2]
	if !strings.Contains(l.Base, "=") {
		return l, fmt.Errorf("base %q: not a DN", l.Base)
	}
	if err := l.options(f[3:]); err != nil {
		return l, err
	}
	if l.StartTLS && u.Scheme != "ldap" {
		return l, errors.New("starttls: only with ldap:// (ldaps:// is TLS from the start)")
	}
	if l.BindDN != "" && u.Scheme == "ldap" && !l.StartTLS && !loopbackHost(u.Hostname()) {
		return l, errors.New("bind over ldap:// without starttls would send the password in clear: add starttls or use ldaps:// (clear text is taken on loopback only)")
	}
	return l, nil
}

// loopbackHost says whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	a, err := netip.ParseAddr(host)
	return strings.EqualFold(host, "localhost") || (err == nil && a.IsLoopback())
}

// ldapSyntax is the ldap line's form, for errors.
const ldapSyntax = "want: ldap URL base DN [bind DN PASSWORD-FILE] [filter F] [starttls] [ca FILE]"

// options parses an ldap line's options after its base.
func (l *LDAPSource) options(rest []string) error {
	for len(rest) > 0 {
		switch {
		case rest[0] == "bind" && len(rest) >= 3 && l.BindDN == "":
			if !strings.Contains(rest[1], "=") {
				return fmt.Errorf("bind DN %q: not a DN", rest[1])
			}
			l.BindDN, l.PasswordFile, rest = rest[1], rest[2], rest[3:]
		case rest[0] == "filter" && len(rest) >= 2 && l.Filter == "":
			if !balancedFilter(rest[1]) {
				return fmt.Errorf("filter %q: want a parenthesised LDAP filter", rest[1])
			}
			l.Filter, rest = rest[1], rest[2:]
		case rest[0] == "starttls" && !l.StartTLS:
			l.StartTLS, rest = true, rest[1:]
		case rest[0] == "ca" && len(rest) >= 2 && l.CAFile == "":
			l.CAFile, rest = rest[1], rest[2:]
		default:
			return fmt.Errorf("option %q: unknown, incomplete or given twice (%s)", rest[0], ldapSyntax)
		}
	}
	return nil
}

// balancedFilter is a cheap shape check of an LDAP filter: "(...)" with
// balanced parentheses.
func balancedFilter(s string) bool {
	if len(s) < 3 || s[0] != '(' || s[len(s)-1] != ')' {
		return false
	}
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			if depth--; depth < 0 || (depth == 0 && i != len(s)-1) {
				return false
			}
		}
	}
	return depth == 0
}

// Strings lists the sources without secrets (the summary's discovery list).
func (d Discover) Strings() []string {
	var out []string
	for _, z := range d.Zones {
		s := "zone " + z.Zone + " server " + z.Server
		if z.TSIG != nil {
			s += " tsig " + z.TSIG.Name
		}
		out = append(out, s+" ports "+joinInts(z.Ports))
	}
	for _, l := range d.LDAP {
		s := "ldap " + l.URL + " base " + l.Base
		if l.StartTLS {
			s += " starttls"
		}
		if l.CAFile != "" {
			s += " ca " + l.CAFile
		}
		out = append(out, s)
	}
	if d.AutoAdd {
		out = append(out, "auto_add yes")
	}
	return out
}

func joinInts(p []int) string {
	s := make([]string, len(p))
	for i, n := range p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
