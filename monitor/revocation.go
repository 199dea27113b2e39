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

// Check reports whether leaf, issued by issuer, is revoked, and why. A CRL
// or OCSP responder that cannot be reached is not a revocation: the probe
// says nothing rather than raise a false alarm.
func (r *Revocation) Check(ctx context.Context, leaf, issuer *x509.Certificate) (bool, string) {
	for _, url := range leaf.CRLDistributionPoints {
		if !strings.HasPrefix(url, "http://") {
			continue
		}
		e := r.crl(ctx, url, issuer)
		if e.err != nil {
			return false, ""
		}
		if e.revoked[leaf.SerialNumber.String()] {
			return true, "serial " + leaf.SerialNumber.Text(16) + " is on the CRL " + url
		}
		return false, ""
	}
	if len(leaf.OCSPServer) > 0 {
		return r.ocsp(ctx, leaf, issuer)
	}
	return false, ""
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
func (r *Revocation) ocsp(ctx context.Context, leaf, issuer *x509.Certificate) (bool, string) {
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return false, ""
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, leaf.OCSPServer[0], bytes.NewReader(req))
	if err != nil {
		return false, ""
	}
	hreq.Header.Set("Content-Type", "application/ocsp-request")
	resp, err := r.client.Do(hreq)
	if err != nil {
		return false, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return false, ""
	}
	parsed, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil || parsed.Status != ocsp.Revoked {
		return false, ""
	}
	return true, "OCSP: revoked " + parsed.RevokedAt.UTC().Format(time.RFC3339)
}
