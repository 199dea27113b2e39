// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/internal/ports"
	"github.com/keychest/keychest-lined/internal/resolve"
)

// Probe defaults, from the issue: at most 16 addresses per name, dial 5 s,
// handshake 10 s, two connections at a time per address.
const (
	DefaultMaxAddresses     = 16
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPerAddress       = 2
)

// TLSProber makes one probe of a name: resolve, check each address against
// the guard, handshake, verify. It keeps no state between probes besides
// the revocation cache and the per-address connection slots.
type TLSProber struct {
	Resolver         resolve.Resolver
	Guard            Guard
	Roots            *x509.CertPool // nil: the system roots
	Revocation       *Revocation    // nil: no revocation checks
	Now              func() time.Time
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	MaxAddresses     int
	// Ports, when set, are the only ports dialled (KEYCHEST_MONITOR_PORTS):
	// a target on another port, left from before the list was narrowed or
	// added around "add", gets not_allowed without a lookup or a packet.
	Ports *ports.Set

	dials *slots // every connection: KEYCHEST_MONITOR_CONCURRENCY overall
	peers *slots // per address: DefaultPerAddress
}

// NewProber returns a prober with the defaults, allowing at most
// concurrency connections at once.
func NewProber(r resolve.Resolver, g Guard, roots *x509.CertPool, concurrency int) *TLSProber {
	return &TLSProber{Resolver: r, Guard: g, Roots: roots, Now: time.Now,
		DialTimeout: DefaultDialTimeout, HandshakeTimeout: DefaultHandshakeTimeout,
		MaxAddresses: DefaultMaxAddresses, dials: newSlots(concurrency), peers: newSlots(DefaultPerAddress)}
}

// Result is what one probe saw.
type Result struct {
	Host      string
	Port      int
	Class     Class  // ok, the name's DNS class, or the first failing address's class
	Detail    string // why, for a DNS failure
	Addresses []AddressResult
	Took      time.Duration
}

// AddressResult is what one address served.
type AddressResult struct {
	Address    netip.Addr
	Class      Class // ok, or the worst of Problems, or a connection class
	Detail     string
	Chain      []*x509.Certificate // leaf first, as served; nil when no handshake
	TLSVersion string
	Problems   []Class // certificate problems, worst first
	// Revocation is what the revocation check told (RevocationOK and the
	// others); "" when none was made (no checker, or an untrusted chain).
	Revocation string
}

// Probe resolves host and probes every address (at most MaxAddresses).
func (p *TLSProber) Probe(ctx context.Context, host string, port int) Result {
	start := time.Now()
	res := Result{Host: host, Port: port, Class: ClassOK}
	if p.Ports != nil && !p.Ports.Allows(port) {
		res.Class, res.Detail = ClassNotAllowed, fmt.Sprintf("port %d is not in KEYCHEST_MONITOR_PORTS", port)
		return res
	}
	lookupCtx, cancel := context.WithTimeout(ctx, p.DialTimeout)
	addrs, err := p.Resolver.LookupNetIP(lookupCtx, "ip", host)
	cancel()
	if err != nil {
		res.Class, res.Detail = classifyLookup(err), err.Error()
		res.Took = time.Since(start)
		return res
	}
	addrs = uniqueAddrs(addrs, p.MaxAddresses)
	if len(addrs) == 0 {
		res.Class, res.Detail = ClassNXDomain, "no A or AAAA record for "+host
		res.Took = time.Since(start)
		return res
	}
	res.Addresses = make([]AddressResult, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Addresses[i] = p.probeAddress(ctx, host, netip.AddrPortFrom(a, uint16(port)))
		}()
	}
	wg.Wait()
	for _, a := range res.Addresses {
		if a.Class != ClassOK {
			res.Class = a.Class
			break
		}
	}
	res.Took = time.Since(start)
	return res
}

// uniqueAddrs unmaps, sorts and de-duplicates addresses, keeping at most max.
func uniqueAddrs(addrs []netip.Addr, max int) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Unmap())
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	out = slices.Compact(out)
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out
}

// probeAddress handshakes with one address; the guard is checked before
// anything is sent, and again by the dialer on the socket's address.
func (p *TLSProber) probeAddress(ctx context.Context, host string, ap netip.AddrPort) AddressResult {
	res := AddressResult{Address: ap.Addr()}
	if !p.Guard.Allowed(ap.Addr()) {
		res.Class, res.Detail = ClassNotAllowed, "private or reserved address; see KEYCHEST_MONITOR_ALLOW_NETS"
		return res
	}
	state, err := p.connect(ctx, host, ap)
	if err != nil {
		if errors.Is(err, errNoSlot) {
			res.Class, res.Detail = ClassTimeout, err.Error()
			return res
		}
		return res.failed(err)
	}
	res.Chain = state.PeerCertificates
	res.TLSVersion = tls.VersionName(state.Version)
	if len(res.Chain) == 0 {
		res.Class, res.Detail = ClassTLSError, "no certificate"
		return res
	}
	res.Problems, res.Detail, res.Revocation = p.verify(ctx, host, res.Chain)
	res.Class = ClassOK
	if len(res.Problems) > 0 {
		res.Class = res.Problems[0]
	}
	return res
}

// errNoSlot is a probe that ended waiting for a connection slot.
var errNoSlot = errors.New("no connection slot before the probe's deadline")

// connect handshakes with ap within a connection slot, and gives the slot
// back before the certificate is verified (which may download a CRL).
func (p *TLSProber) connect(ctx context.Context, host string, ap netip.AddrPort) (tls.ConnectionState, error) {
	release, err := p.acquire(ctx, ap.Addr())
	if err != nil {
		return tls.ConnectionState{}, errNoSlot
	}
	defer release()
	conn, err := p.handshake(ctx, host, ap)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	conn.Close()
	return conn.ConnectionState(), nil
}

// failed records a dial or handshake error.
func (r AddressResult) failed(err error) AddressResult {
	r.Class = classifyDial(err, isHandshake(err))
	r.Detail = err.Error()
	return r
}

// acquire takes an overall slot and one of the address's.
func (p *TLSProber) acquire(ctx context.Context, a netip.Addr) (func(), error) {
	releasePeer, err := p.peers.acquire(ctx, a)
	if err != nil {
		return nil, err
	}
	releaseDial, err := p.dials.acquire(ctx, netip.Addr{})
	if err != nil {
		releasePeer()
		return nil, err
	}
	return func() { releaseDial(); releasePeer() }, nil
}

// handshakeError marks an error of the TLS handshake, as opposed to the dial.
type handshakeError struct{ err error }

func (e handshakeError) Error() string { return "handshake: " + e.err.Error() }
func (e handshakeError) Unwrap() error { return e.err }

func isHandshake(err error) bool {
	_, ok := err.(handshakeError)
	return ok
}

// handshake dials ap and completes a TLS handshake with SNI host. The
// certificate is verified afterwards, so that an untrusted one is still seen.
func (p *TLSProber) handshake(ctx context.Context, host string, ap netip.AddrPort) (*tls.Conn, error) {
	d := net.Dialer{Timeout: p.DialTimeout, Control: p.Guard.control}
	raw, err := d.DialContext(ctx, "tcp", ap.String())
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, p.HandshakeTimeout)
	defer cancel()
	// Classic key exchanges only: a probe carries no secret worth a
	// post-quantum share, and ML-KEM would double the handshake's CPU.
	conn := tls.Client(raw, &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS10,
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}})
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, handshakeError{err}
	}
	return conn, nil
}

// verify lists the leaf's problems, worst first: expired or not yet valid,
// revoked, untrusted, name mismatch; and what the revocation check told.
func (p *TLSProber) verify(ctx context.Context, host string, chain []*x509.Certificate) ([]Class, string, string) {
	leaf, now := chain[0], p.Now()
	var problems []Class
	var detail, revocation string
	switch {
	case now.After(leaf.NotAfter):
		problems = append(problems, ClassExpired)
		detail = "expired " + leaf.NotAfter.UTC().Format(time.RFC3339)
	case now.Before(leaf.NotBefore):
		problems = append(problems, ClassNotYetValid)
		detail = "valid from " + leaf.NotBefore.UTC().Format(time.RFC3339)
	}
	// Trust is judged inside the leaf's validity, so that an expired
	// certificate from a trusted CA is "expired", not also "untrusted".
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: p.Roots, Intermediates: pool(chain[1:]),
		CurrentTime: clamp(now, leaf.NotBefore, leaf.NotAfter)})
	switch {
	case err != nil:
		problems = append(problems, ClassUntrusted)
		detail = join(detail, err.Error())
	case p.Revocation != nil && len(chains[0]) > 1:
		var why string
		if revocation, why = p.Revocation.Status(ctx, leaf, chains[0][1]); revocation == RevocationRevoked {
			problems = append([]Class{ClassRevoked}, problems...)
			detail = join(detail, why)
		}
	}
	if err := leaf.VerifyHostname(host); err != nil {
		problems = append(problems, ClassMismatch)
		detail = join(detail, err.Error())
	}
	return problems, detail, revocation
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

func clamp(t, lo, hi time.Time) time.Time {
	switch {
	case t.Before(lo):
		return lo
	case t.After(hi):
		return hi
	}
	return t
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// HostPort splits "host[:port]" (port 443 when left out).
func HostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return s, 443, nil
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", s)
	}
	return host, port, nil
}
