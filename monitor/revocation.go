// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// DefaultCRLMaxBytes caps one CRL download. Let's Encrypt's sharded CRLs
// are far smaller; a CA's full CRL can reach tens of megabytes.
const DefaultCRLMaxBytes = 32 << 20

// Revocation tells whether a certificate is revoked, from the CRL its
// distribution point names (fetched over HTTP and cached by URL until its
// NextUpdate), or from OCSP only when the certificate names no CRL. Its
// downloads go through the same address guard as the probes.
type Revocation struct {
	client   *http.Client
	maxBytes int64
	now      func() time.Time

	mu    sync.Mutex
	cache map[string]*crlEntry
}

// crlEntry is one cached CRL: the serials it revokes, until when it is
// good, and a channel closed once it has been fetched.
type crlEntry struct {
	ready   chan struct{}
	revoked map[string]bool
	until   time.Time
	err     error
}

// NewRevocation returns a checker whose downloads honour guard and time
// out after timeout.
func NewRevocation(guard Guard, timeout time.Duration, maxBytes int64, now func() time.Time) *Revocation {
	d := &net.Dialer{Timeout: timeout, Control: guard.control}
	transport := &http.Transport{DialContext: d.DialContext, Proxy: nil, MaxIdleConnsPerHost: 4,
		ResponseHeaderTimeout: timeout}
	return &Revocation{client: &http.Client{Transport: transport, Timeout: 2 * timeout},
		maxBytes: maxBytes, now: now, cache: map[string]*crlEntry{}}
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
		e := r.crl(ctx, url, issuer)
		if e.err != nil {
			return RevocationUnknown, e.err.Error()
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
func (r *Revocation) crl(ctx context.Context, url string, issuer *x509.Certificate) *crlEntry {
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
		e = &crlEntry{ready: make(chan struct{})}
		r.cache[url] = e
		go r.fetch(url, issuer, e)
	}
	r.mu.Unlock()
	select {
	case <-e.ready:
		return e
	case <-ctx.Done():
		return &crlEntry{err: ctx.Err()}
	}
}

// fetch downloads, checks and indexes one CRL; a failed fetch is kept for
// a minute so that a dead distribution point is not asked on every probe.
func (r *Revocation) fetch(url string, issuer *x509.Certificate, e *crlEntry) {
	defer close(e.ready)
	body, err := r.get(url)
	if err == nil {
		var list *x509.RevocationList
		if list, err = x509.ParseRevocationList(body); err == nil {
			err = list.CheckSignatureFrom(issuer)
			e.revoked = make(map[string]bool, len(list.RevokedCertificateEntries))
			for _, rc := range list.RevokedCertificateEntries {
				e.revoked[rc.SerialNumber.String()] = true
			}
			e.until = list.NextUpdate
		}
	}
	if err != nil {
		e.err, e.until = fmt.Errorf("CRL %s: %w", url, err), r.now().Add(time.Minute)
	}
}

// get fetches url with the size cap.
func (r *Revocation) get(url string) ([]byte, error) {
	resp, err := r.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
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
