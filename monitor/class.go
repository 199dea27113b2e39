// SPDX-License-Identifier: Apache-2.0

// Package monitor watches the certificates of active domains: it resolves
// each target, makes a TLS handshake with every address that the guard
// allows (internal/netguard) on a port of KEYCHEST_MONITOR_PORTS, asks
// whether the leaf is revoked (its CRL; OCSP when it names none), judges
// what it saw against the certificate's own lifetime, and has the store
// write the findings. The probe (probe.go, revocation.go) does the I/O,
// the judge (judge.go) is pure, and the scheduler (schedule.go) leases
// targets from the store so that many monitors can share one database;
// metrics.go counts for Prometheus.
package monitor

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"syscall"
)

// Class is the stable name of why probing one address (or a name) failed.
// The names are an interface: they appear in logs, metrics, `probe`
// output and finding details.
type Class string

// The classes. ClassOK means the address served a certificate that is
// valid, trusted, for the name, and not revoked.
const (
	ClassOK          Class = "ok"
	ClassNXDomain    Class = "dns_nxdomain"  // the name has no address
	ClassDNSError    Class = "dns_error"     // the lookup failed otherwise
	ClassRefused     Class = "refused"       // connection refused, or no route to the address
	ClassTimeout     Class = "timeout"       // dial (5 s) or handshake (10 s) took too long
	ClassTLSError    Class = "tls_error"     // the handshake failed
	ClassUntrusted   Class = "untrusted"     // no chain to a trusted root
	ClassExpired     Class = "expired"       // the leaf's notAfter has passed
	ClassNotYetValid Class = "not_yet_valid" // the leaf's notBefore is in the future
	ClassMismatch    Class = "name_mismatch" // the leaf does not cover the name
	ClassRevoked     Class = "revoked"       // the leaf is on its CA's CRL (or OCSP says so)
	ClassNotAllowed  Class = "not_allowed"   // the address is private or reserved: never dialled
)

// Classes lists every class, for metrics that must not grow labels.
var Classes = []Class{ClassOK, ClassNXDomain, ClassDNSError, ClassRefused, ClassTimeout, ClassTLSError,
	ClassUntrusted, ClassExpired, ClassNotYetValid, ClassMismatch, ClassRevoked, ClassNotAllowed}

// IsConnection reports whether c means no certificate was seen at all.
func (c Class) IsConnection() bool {
	switch c {
	case ClassNXDomain, ClassDNSError, ClassRefused, ClassTimeout, ClassTLSError, ClassNotAllowed:
		return true
	}
	return false
}

// classifyLookup names a resolver error.
func classifyLookup(err error) Class {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return ClassNXDomain
	}
	return ClassDNSError
}

// classifyDial names an error of dialling or of the handshake; tls says
// which of the two failed.
func classifyDial(err error, handshake bool) Class {
	var netErr net.Error
	switch {
	case errors.Is(err, errNotAllowed):
		return ClassNotAllowed
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ECONNRESET) && !handshake:
		return ClassRefused
	case handshake:
		return ClassTLSError
	}
	return ClassRefused
}

// classifyVerify names an x509 verification error.
func classifyVerify(err error) Class {
	var invalid x509.CertificateInvalidError
	var hostErr x509.HostnameError
	switch {
	case errors.As(err, &hostErr):
		return ClassMismatch
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return ClassExpired
	}
	return ClassUntrusted
}
