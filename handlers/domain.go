package handlers

import (
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"

	"github.com/keychest/keychest-lined/internal/ports"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/store"
)

// Domain is a normalised name to watch: ASCII (IDN in punycode), lowercase,
// without a trailing dot, and a port.
type Domain struct {
	Name     string // "*.example.com" for a wildcard
	Port     int
	Wildcard bool
}

const defaultPort = 443

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
func ParseDomain(raw string) (Domain, *lineproto.Error) {
	s := strings.TrimSpace(raw)
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if !strings.EqualFold(scheme, "https") {
			return Domain{}, bad("only https:// may precede a domain")
		}
		s = rest
	}
	s = strings.TrimSuffix(s, "/")
	if strings.ContainsAny(s, "/?#@") {
		return Domain{}, bad("domain must be a host name, not a URL with a path or user")
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
	if len(d.Name) > store.MaxDomainName {
		return Domain{}, tooLong(d.Wildcard)
	}
	return d, nil
}

// splitPort separates an optional ":port" from the host.
func splitPort(s string) (string, int, *lineproto.Error) {
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") > 1 {
		return "", 0, bad("IP addresses are not accepted; send a host name")
	}
	host, p, found := strings.Cut(s, ":")
	if !found {
		return host, defaultPort, nil
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 || p[0] == '+' {
		return "", 0, bad("port must be a number from 1 to 65535")
	}
	return host, port, nil
}

// portListMax caps the list of allowed ports quoted in a refusal, so that
// an operator's long list cannot stretch the reply line.
const portListMax = 200

// watchable refuses a domain on a port the monitor may not watch
// (KEYCHEST_MONITOR_PORTS), naming the ports it may.
func watchable(d Domain, allowed ports.Set) *lineproto.Error {
	if allowed.Allows(d.Port) {
		return nil
	}
	list := allowed.String()
	if len(list) > portListMax {
		list = list[:strings.LastIndexByte(list[:portListMax], ',')] + ",..."
	}
	return lineproto.Errorf(lineproto.CodeBadRequest, "port %d is not monitored here; allowed ports: %s", d.Port, list)
}

// hostName checks and converts one host name (without wildcard or port).
func hostName(host string) (string, *lineproto.Error) {
	if host == "" {
		return "", bad("domain is empty")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", bad("IP addresses are not accepted; send a host name")
	}
	ascii, err := idnaProfile.ToASCII(strings.ToLower(host))
	if err != nil {
		return "", labelError(strings.ToLower(host))
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", bad("domain needs at least two labels, like example.com")
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return "", bad("top-level label may not be all digits")
	}
	return ascii, nil
}

// labelError explains why a name failed IDNA conversion, as precisely as a
// plain look at it allows.
func labelError(host string) *lineproto.Error {
	if len(host) > store.MaxDomainName {
		return tooLong(false)
	}
	for _, label := range strings.Split(host, ".") {
		switch {
		case label == "":
			return bad("domain has an empty label")
		case len(label) > 63:
			return bad("domain label longer than 63 characters")
		case strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-"):
			return bad("domain label may not start or end with '-'")
		}
	}
	return bad("domain has characters not allowed in a host name")
}

// tooLong words the one length rule, store.MaxDomainName.
func tooLong(wildcard bool) *lineproto.Error {
	if wildcard {
		return lineproto.Errorf(lineproto.CodeBadRequest, "domain longer than %d characters with its \"*.\"", store.MaxDomainName)
	}
	return lineproto.Errorf(lineproto.CodeBadRequest, "domain longer than %d characters", store.MaxDomainName)
}

func bad(text string) *lineproto.Error { return lineproto.Errorf(lineproto.CodeBadRequest, "%s", text) }
