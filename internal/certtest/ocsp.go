// SPDX-License-Identifier: Apache-2.0

package certtest

import (
	"io"
	"math/big"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPResponder answers OCSP requests for a CA's leaves over plain HTTP:
// good, unless Revoke named the serial.
type OCSPResponder struct {
	// URL is the responder's address, for CA.OCSPURL.
	URL string
	// Requests counts the requests answered.
	Requests atomic.Int64
	ca       *CA
	srv      *http.Server
	mu       sync.Mutex
	revoked  map[string]time.Time
}

// ServeOCSP starts a responder for ca on addr.
func ServeOCSP(addr string, ca *CA) (*OCSPResponder, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &OCSPResponder{URL: "http://" + ln.Addr().String(), ca: ca, revoked: map[string]time.Time{}}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.answer)}
	go r.srv.Serve(ln)
	return r, nil
}

// Revoke makes the responder answer revoked for serial from now on.
func (r *OCSPResponder) Revoke(serial *big.Int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.revoked[serial.String()] = time.Now().Add(-time.Minute)
}

// Close stops the responder.
func (r *OCSPResponder) Close() { r.srv.Close() }

func (r *OCSPResponder) answer(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 4096))
	if err != nil {
		return
	}
	q, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, "bad OCSP request", http.StatusBadRequest)
		return
	}
	r.Requests.Add(1)
	now := time.Now()
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: q.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	r.mu.Lock()
	if at, ok := r.revoked[q.SerialNumber.String()]; ok {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, at, ocsp.KeyCompromise
	}
	r.mu.Unlock()
	der, err := ocsp.CreateResponse(r.ca.Cert, r.ca.Cert, tmpl, r.ca.Key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}
