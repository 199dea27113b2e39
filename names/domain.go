// SPDX-License-Identifier: Apache-2.0

package names

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// MaxDomainName is the longest domain name, a wildcard's "*." included:
// DNS's 253 characters of a name in text form. It is the one length rule:
// ParseDomain refuses longer names, and the schema's CHECK
// domains_name_check holds the same number.
const MaxDomainName = 253

// DefaultPort is the port of a domain sent without one.
const DefaultPort = 443

// Domain is a normalised name to watch: ASCII (IDN in punycode), lowercase,
// without a trailing dot, and a port.
type Domain struct {
	Name     string // "*.example.com" for a wildcard
	Port     int
	Wildcard bool
}

// idnaProfile converts internationalised names to punycode with the rules
// of a DNS lookup (UTS #46), and checks label and name lengths.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.CheckHyphens(true),
	idna.CheckJoiners(true),
	idna.StrictDomainName(true),
	idna.VerifyDNSLength(true),
)

// ParseDomain normalises what a client sent as a domain: it trims blanks,
// drops "https://" and a trailing "/" or ".", splits off ":port" (default
// 443), accepts a leading "*." as a wildcard, and converts IDN labels to
// punycode. IP addresses and single-label names are refused with a reason.
func ParseDomain(raw string) (Domain, error) {
	s := strings.TrimSpace(raw)
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if !strings.EqualFold(scheme, "https") {
			return Domain{}, invalid("only https:// may precede a domain")
		}
		s = rest
	}
	s = strings.TrimSuffix(s, "/")
	if strings.ContainsAny(s, "/?#@") {
		return Domain{}, invalid("domain must be a host name, not a URL with a path or user")
	}
	host, port, err := splitPort(s)
	if err != nil {
		return Domain{}, err
	}
	host = strings.TrimSuffix(host, ".")
	d := Domain{Port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		d.Wildcard = true
		host = rest
	}
	name, err := hostName(host)
	if err != nil {
		return Domain{}, err
	}
	d.Name = name
	if d.Wildcard {
		d.Name = "*." + name
	}
	if len(d.Name) > MaxDomainName {
		return Domain{}, tooLong(d.Wildcard)
	}
	return d, nil
}

// splitPort separates an optional ":port" from the host.
func splitPort(s string) (string, int, *Error) {
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") > 1 {
		return "", 0, invalid("IP addresses are not accepted; send a host name")
	}
	host, p, found := strings.Cut(s, ":")
	if !found {
		return host, DefaultPort, nil
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 || p[0] == '+' {
		return "", 0, invalid("port must be a number from 1 to 65535")
	}
	return host, port, nil
}

// hostName checks and converts one host name (without wildcard or port).
func hostName(host string) (string, *Error) {
	if host == "" {
		return "", invalid("domain is empty")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", invalid("IP addresses are not accepted; send a host name")
	}
	ascii, err := idnaProfile.ToASCII(strings.ToLower(host))
	if err != nil {
		return "", labelError(strings.ToLower(host))
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", invalid("domain needs at least two labels, like example.com")
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return "", invalid("top-level label may not be all digits")
	}
	return ascii, nil
}

// labelError explains why a name failed IDNA conversion, as precisely as a
// plain look at it allows.
func labelError(host string) *Error {
	if len(host) > MaxDomainName {
		return tooLong(false)
	}
	for _, label := range strings.Split(host, ".") {
		switch {
		case label == "":
			return invalid("domain has an empty label")
		case len(label) > 63:
			return invalid("domain label longer than 63 characters")
		case strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-"):
			return invalid("domain label may not start or end with '-'")
		}
	}
	return invalid("domain has characters not allowed in a host name")
}

// tooLong words the one length rule, MaxDomainName.
func tooLong(wildcard bool) *Error {
	if wildcard {
		return invalid(fmt.Sprintf("domain longer than %d characters with its \"*.\"", MaxDomainName))
	}
	return invalid(fmt.Sprintf("domain longer than %d characters", MaxDomainName))
}
