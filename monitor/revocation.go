// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/keychest/keychest-lined/internal/netguard"
)

// DefaultCRLMaxBytes caps one CRL download. Let's Encrypt's sharded CRLs
// are far smaller; a CA's full CRL can reach tens of megabytes.
const DefaultCRLMaxBytes = 32 << 20

// Bounds of the CRL cache: since an agent can push its own CA, whose
// leaves may name any CRL URL, the cache keeps at most crlCacheEntries
// CRLs and crlCacheBytes of them (counted as their downloaded size plus
// crlSerialCost a revoked serial), dropping the least recently used.
const (
	crlCacheEntries = 256
	crlCacheBytes   = 128 << 20
	crlSerialCost   = 96
	crlIssuersKept  = 16 // signature verdicts kept per CRL, by issuer
)

// Revocation tells whether a certificate is revoked, from the CRL its
// distribution point names (fetched over HTTP and cached by URL until its
// NextUpdate, its signature checked against each asking issuer), or from
// OCSP only when the certificate names no CRL. Its downloads go through
// the same address guard as the probes, follow no redirect, and dial only
// ports 80 and 443 of a public address (any port of an address outside
// the public internet that the guard allows: an internal CA's server).
type Revocation struct {
	client   *http.Client
	maxBytes int64
	now      func() time.Time
	// anyPort tells whether addr may be dialled on a port other than 80
	// and 443: by default, when addr is not public (the guard then only
	// lets it through when the operator's allow-list names it).
	anyPort func(addr netip.Addr) bool
	// maxEntries and maxCached bound the cache (crlCache*).
	maxEntries int
	maxCached  int64

	mu    sync.Mutex
	cache map[string]*crlEntry
	bytes int64  // the cost of the cached CRLs
	tick  uint64 // a clock for the least recently used
}

// crlEntry is one cached CRL: the list (for its signature), the serials
// it revokes, until when it is good, and a channel closed once it has
// been fetched; then the signature verdicts by issuer.
type crlEntry struct {
	ready   chan struct{}
	list    *x509.RevocationList
	revoked map[string]bool
	until   time.Time
	err     error
	cost    int64
	used    uint64 // r.tick when last asked, under r.mu

	vmu      sync.Mutex
	verdicts map[[32]byte]error
}

// NewRevocation returns a checker whose downloads honour guard and time
// out after timeout.
func NewRevocation(guard Guard, timeout time.Duration, maxBytes int64, now func() time.Time) *Revocation {
	r := &Revocation{maxBytes: maxBytes, now: now, cache: map[string]*crlEntry{},
		maxEntries: crlCacheEntries, maxCached: crlCacheBytes, anyPort: func(a netip.Addr) bool { return !netguard.Public(a) }}
	d := &net.Dialer{Timeout: timeout, Control: func(network, address string, c syscall.RawConn) error {
		if err := r.portAllowed(address); err != nil {
			return err
		}
		return guard.control(network, address, c)
	}}
	transport := &http.Transport{DialContext: d.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4,
		ResponseHeaderTimeout: timeout}
	r.client = &http.Client{Transport: transport, Timeout: 2 * timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return r
}

// portAllowed refuses a dial to address (ip:port) on a port other than
// 80 and 443, unless anyPort allows its address.
func (r *Revocation) portAllowed(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	if p := ap.Port(); p == 80 || p == 443 || r.anyPort(ap.Addr().Unmap()) {
		return nil
	}
	return fmt.Errorf("port %d refused: a public address is asked only on ports 80 and 443", ap.Port())
}

// What a revocation check could tell (Status).
const (
	// RevocationOK: the CRL, or the OCSP responder, says the certificate is not revoked.
	RevocationOK = "ok"
	// RevocationRevoked: it is on the CRL, or the OCSP responder says revoked.
	RevocationRevoked = "revoked"
	// RevocationUnknown: a CRL or responder is named but gave no answer: not
	// reachable, refused by the address guard (a private address), or an
	// answer that does not parse or check out. Neither revoked nor ok.
	RevocationUnknown = "unknown"
	// RevocationNone: the certificate names no CRL nor OCSP responder (over http).
	RevocationNone = "none"
)

// Check reports whether leaf, issued by issuer, is revoked, and why. A CRL
// or OCSP responder that cannot be reached is not a revocation: the probe
// says nothing rather than raise a false alarm.
func (r *Revocation) Check(ctx context.Context, leaf, issuer *x509.Certificate) (bool, string) {
	status, why := r.Status(ctx, leaf, issuer)
	if status != RevocationRevoked {
		return false, ""
	}
	return true, why
}

// Status tells what the CRL the certificate names (the first over http),
// or else its OCSP responder, says of leaf: one of the Revocation*
// answers, and why (the revocation, or why there is no answer).
func (r *Revocation) Status(ctx context.Context, leaf, issuer *x509.Certificate) (string, string) {
	for _, url := range leaf.CRLDistributionPoints {
		if !strings.HasPrefix(url, "http://") {
			continue
		}
		e := r.crl(ctx, url)
		if e.err != nil {
			return RevocationUnknown, e.err.Error()
		}
		if err := e.verify(issuer); err != nil {
			return RevocationUnknown, fmt.Sprintf("CRL %s: %v", url, err)
		}
		if e.revoked[leaf.SerialNumber.String()] {
			return RevocationRevoked, "serial " + leaf.SerialNumber.Text(16) + " is on the CRL " + url
		}
		return RevocationOK, ""
	}
	if len(leaf.OCSPServer) > 0 {
		return r.ocsp(ctx, leaf, issuer)
	}
	return RevocationNone, ""
}

// crl returns the cached CRL of url, fetching it when missing or past its
// NextUpdate. Concurrent probes of one URL share one download.
func (r *Revocation) crl(ctx context.Context, url string) *crlEntry {
	r.mu.Lock()
	e, ok := r.cache[url]
	if ok {
		select {
		case <-e.ready:
			if !r.now().Before(e.until) {
				ok = false // past NextUpdate, or a failure older than a minute: fetch again
			}
		default: // being fetched
		}
	}
	if !ok {
		r.drop(url)
		e = &crlEntry{ready: make(chan struct{})}
		r.cache[url] = e
		go r.fetch(url, e)
	}
	r.tick++
	e.used = r.tick
	r.trim()
	r.mu.Unlock()
	select {
	case <-e.ready:
		return e
	case <-ctx.Done():
		return &crlEntry{err: ctx.Err()}
	}
}

// drop forgets the cached CRL of url, under r.mu.
func (r *Revocation) drop(url string) {
	if e, ok := r.cache[url]; ok {
		r.bytes -= e.cost
		delete(r.cache, url)
	}
}

// trim drops the least recently used fetched CRLs while the cache holds
// more than maxEntries of them or maxCached bytes, under r.mu. CRLs
// being fetched stay (their number is that of the probes under way).
func (r *Revocation) trim() {
	for len(r.cache) > r.maxEntries || r.bytes > r.maxCached {
		oldest, best := "", uint64(0)
		for url, e := range r.cache {
			select {
			case <-e.ready:
				if oldest == "" || e.used < best {
					oldest, best = url, e.used
				}
			default:
			}
		}
		if oldest == "" {
			return
		}
		r.drop(oldest)
	}
}

// fetch downloads, parses and indexes one CRL; a failed fetch is kept for
// a minute so that a dead distribution point is not asked on every probe.
// The signature is checked later, against each issuer that asks.
func (r *Revocation) fetch(url string, e *crlEntry) {
	body, err := r.get(url)
	if err == nil {
		var list *x509.RevocationList
		if list, err = x509.ParseRevocationList(body); err == nil {
			e.revoked = make(map[string]bool, len(list.RevokedCertificateEntries))
			for _, rc := range list.RevokedCertificateEntries {
				e.revoked[rc.SerialNumber.String()] = true
			}
			e.cost = int64(len(body)) + crlSerialCost*int64(len(e.revoked))
			list.RevokedCertificateEntries, list.RevokedCertificates = nil, nil // indexed in e.revoked
			e.list, e.until = list, list.NextUpdate
		}
	}
	if err != nil {
		e.err, e.until = fmt.Errorf("CRL %s: %w", url, err), r.now().Add(time.Minute)
	}
	r.mu.Lock()
	if r.cache[url] == e {
		r.bytes += e.cost
		r.trim()
	}
	close(e.ready)
	r.mu.Unlock()
}

// verify tells whether issuer signed the CRL and is named its issuer,
// remembering the verdict by issuer (its subject and key): a CRL URL
// named by another CA's leaf does not change what it tells this one's.
func (e *crlEntry) verify(issuer *x509.Certificate) error {
	h := sha256.New()
	h.Write(issuer.RawSubject)
	h.Write(issuer.RawSubjectPublicKeyInfo)
	var key [32]byte
	h.Sum(key[:0])
	e.vmu.Lock()
	err, ok := e.verdicts[key]
	e.vmu.Unlock()
	if ok {
		return err
	}
	if !bytes.Equal(e.list.RawIssuer, issuer.RawSubject) {
		err = errors.New("issued by another CA than the certificate's")
	} else {
		err = e.list.CheckSignatureFrom(issuer)
	}
	e.vmu.Lock()
	if e.verdicts == nil {
		e.verdicts = map[[32]byte]error{}
	}
	if len(e.verdicts) < crlIssuersKept {
		e.verdicts[key] = err
	}
	e.vmu.Unlock()
	return err
}

// get fetches url with the size cap.
func (r *Revocation) get(url string) ([]byte, error) {
	resp, err := r.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // a redirect too: none is followed
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.maxBytes+1))
	if err == nil && int64(len(body)) > r.maxBytes {
		err = fmt.Errorf("larger than %d bytes", r.maxBytes)
	}
	return body, err
}

// ocsp asks the certificate's OCSP responder (only used without a CRL).
func (r *Revocation) ocsp(ctx context.Context, leaf, issuer *x509.Certificate) (string, string) {
	url := leaf.OCSPServer[0]
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return RevocationUnknown, "OCSP request: " + err.Error()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return RevocationUnknown, "OCSP " + err.Error()
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := r.client.Do(hreq)
	if err != nil {
		return RevocationUnknown, "OCSP " + err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK { // a redirect too: none is followed
		return RevocationUnknown, fmt.Sprintf("OCSP %s: HTTP %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return RevocationUnknown, "OCSP " + url + ": " + err.Error()
	}
	parsed, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	switch {
	case err != nil:
		return RevocationUnknown, "OCSP " + url + ": " + err.Error()
	case parsed.Status == ocsp.Revoked:
		return RevocationRevoked, "OCSP: revoked " + parsed.RevokedAt.UTC().Format(time.RFC3339)
	case parsed.Status == ocsp.Good:
		return RevocationOK, ""
	}
	return RevocationUnknown, "OCSP " + url + ": the responder does not know the certificate"
}
