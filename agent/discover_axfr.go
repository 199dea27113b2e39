// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// MaxZoneRecords bounds one transfer: past it, the transfer is abandoned.
const MaxZoneRecords = 2_000_000

// Candidate is a discovered endpoint: a name, a port, and how many of its
// addresses in the zone allow.conf permits on that port.
type Candidate struct {
	Name      string `json:"name"`
	Port      int    `json:"port"`
	Addresses int    `json:"addresses"`
}

// TransferError is a failed zone transfer; Refused is true when the
// server answered with a refusal (REFUSED, NOTAUTH, a TSIG error) rather
// than failing to answer.
type TransferError struct {
	Zone    string
	Refused bool
	Err     error
}

func (e *TransferError) Error() string {
	return fmt.Sprintf("transfer of %s: %v", e.Zone, e.Err)
}

func (e *TransferError) Unwrap() error { return e.Err }

// readTSIGSecret reads a TSIG secret file (relative to dir unless
// absolute; the rule of secrets checked on the file read, uid the
// agent's user): its first line, base64 as in BIND's and NSD's key
// statements.
func readTSIGSecret(dir string, uid int, t *TSIG) (string, error) {
	p := inDir(dir, t.SecretFile)
	raw, err := readOwned(p, uid, true)
	if err != nil {
		return "", fmt.Errorf("tsig secret: %w", err)
	}
	s := strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0])
	if s == "" {
		return "", fmt.Errorf("tsig secret %s: empty", p)
	}
	return s, nil
}

// TransferZone fetches z by AXFR from its server, signed with its TSIG
// key when it has one. dir is DIR (for a relative secret file), uid the
// agent's user (who may own it). timeout bounds the dial and each read
// and write; ending ctx cuts the connection at once.
func TransferZone(ctx context.Context, z ZoneSource, dir string, uid int, timeout time.Duration) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetAxfr(z.Zone)
	t := &dns.Transfer{ReadTimeout: timeout, WriteTimeout: timeout}
	if z.TSIG != nil {
		secret, err := readTSIGSecret(dir, uid, z.TSIG)
		if err != nil {
			return nil, &TransferError{Zone: z.Zone, Err: err}
		}
		t.TsigSecret = map[string]string{z.TSIG.Name: secret}
		m.SetTsig(z.TSIG.Name, z.TSIG.Alg, 300, time.Now().Unix())
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	c, err := new(net.Dialer).DialContext(dctx, "tcp", z.Server)
	cancel()
	if err != nil {
		return nil, &TransferError{Zone: z.Zone, Err: err}
	}
	defer c.Close()
	defer context.AfterFunc(ctx, func() { c.Close() })()
	t.Conn = &dns.Conn{Conn: c}
	ch, err := t.In(m, z.Server)
	if err != nil {
		return nil, &TransferError{Zone: z.Zone, Err: err}
	}
	var rrs []dns.RR
	var failed error
	for env := range ch {
		if failed != nil {
			continue // drain, so the reader's goroutine ends
		}
		if env.Error != nil {
			failed = env.Error
			continue
		}
		rrs = append(rrs, env.RR...)
		if len(rrs) > MaxZoneRecords {
			failed = fmt.Errorf("more than %d records", MaxZoneRecords)
			t.Close()
		}
	}
	if failed != nil {
		return nil, &TransferError{Zone: z.Zone, Refused: isRefusal(failed), Err: failed}
	}
	if len(rrs) == 0 {
		return nil, &TransferError{Zone: z.Zone, Err: errors.New("empty transfer")}
	}
	return rrs, nil
}

// isRefusal tells a server's refusal from a failure to reach or read it.
func isRefusal(err error) bool {
	if errors.Is(err, dns.ErrAuth) || errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrKey) ||
		errors.Is(err, dns.ErrKeyAlg) || errors.Is(err, dns.ErrTime) || errors.Is(err, dns.ErrSecret) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "rcode") || strings.Contains(s, "REFUSED") || strings.Contains(s, "NOTAUTH")
}

// ZoneCandidates turns a zone's records into candidates: each A/AAAA
// owner name for each of z's ports, and each SRV target (with an address
// in the zone) on the SRV record's port. A name:port is a candidate only
// when allow.conf permits at least one of its addresses on that port; its
// Addresses is how many it permits. Wildcard names are skipped. The
// result is sorted by name and port.
func ZoneCandidates(z ZoneSource, rrs []dns.RR, allow Allow) []Candidate {
	addrs := map[string][]netip.Addr{}
	type srv struct {
		target string
		port   int
	}
	var srvs []srv
	for _, rr := range rrs {
		name := strings.TrimSuffix(strings.ToLower(rr.Header().Name), ".")
		switch r := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(r.A.To4()); ok {
				addrs[name] = append(addrs[name], a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(r.AAAA.To16()); ok {
				addrs[name] = append(addrs[name], a)
			}
		case *dns.SRV:
			srvs = append(srvs, srv{strings.TrimSuffix(strings.ToLower(r.Target), "."), int(r.Port)})
		}
	}
	seen := map[Candidate]bool{}
	var out []Candidate
	add := func(name string, port int) {
		if strings.Contains(name, "*") || name == "" || port == 0 {
			return
		}
		n := 0
		for _, a := range addrs[name] {
			if ok, _ := allow.Permits(a, port, name); ok {
				n++
			}
		}
		c := Candidate{Name: name, Port: port, Addresses: n}
		if n > 0 && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for name := range addrs {
		for _, p := range z.Ports {
			add(name, p)
		}
	}
	for _, s := range srvs {
		add(s.target, s.port)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Port < out[j].Port
	})
	return out
}
