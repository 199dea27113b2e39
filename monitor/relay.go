// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"sync"
)

// ProbeConn makes the probe of one address of host over raw, a connection
// that already reaches the target: a keychest-agent's relay, which copies
// bytes between raw and the address ap it dialled. The handshake, the
// verification and the classes are the monitor's own, as for a public
// target; roots, when not nil, are the site's internal CAs, trusted for
// this probe besides p.Roots. The caller closes raw (the relay), once it
// has recorded the result.
func (p *TLSProber) ProbeConn(ctx context.Context, raw net.Conn, host string, ap netip.AddrPort, roots []*x509.Certificate) AddressResult {
	res := AddressResult{Address: ap.Addr()}
	hctx, cancel := context.WithTimeout(ctx, p.HandshakeTimeout)
	defer cancel()
	conn := tls.Client(raw, &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS10,
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}})
	if err := conn.HandshakeContext(hctx); err != nil {
		return res.failed(handshakeError{err})
	}
	state := conn.ConnectionState()
	res.Chain, res.TLSVersion = state.PeerCertificates, tls.VersionName(state.Version)
	if len(res.Chain) == 0 {
		res.Class, res.Detail = ClassTLSError, "no certificate"
		return res
	}
	site := *p
	if len(roots) > 0 {
		site.Roots = sitePools.get(p.Roots, roots)
	}
	res.Problems, res.Detail, res.Revocation = site.verify(ctx, host, res.Chain)
	res.Class = ClassOK
	if len(res.Problems) > 0 {
		res.Class = res.Problems[0]
	}
	return res
}

// pools keeps, for each set of a site's CAs, the pool of base and those
// CAs: a relayed probe verifies against it without copying the system's
// roots each time. At most maxPools sets; past that it starts afresh.
type pools struct {
	mu sync.Mutex
	m  map[poolKey]*x509.CertPool
}

// poolKey names a pool: its base, and the hash of the site's CAs.
type poolKey struct {
	base *x509.CertPool
	cas  [32]byte
}

// sitePools are the pools of relayed probes, shared by every prober.
var sitePools pools

// maxPools bounds the pools kept (agents push the CAs of their sites).
const maxPools = 1024

// get returns the pool of base and extra, made once per set of extra.
func (ps *pools) get(base *x509.CertPool, extra []*x509.Certificate) *x509.CertPool {
	h := sha256.New()
	for _, c := range extra {
		h.Write(c.Raw)
	}
	key := poolKey{base: base}
	h.Sum(key.cas[:0])
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.m[key]; ok {
		return p
	}
	if ps.m == nil || len(ps.m) >= maxPools {
		ps.m = map[poolKey]*x509.CertPool{}
	}
	p := withRoots(base, extra)
	ps.m[key] = p
	return p
}

// withRoots is base (nil: the system's roots) and the certificates extra.
func withRoots(base *x509.CertPool, extra []*x509.Certificate) *x509.CertPool {
	var out *x509.CertPool
	if base != nil {
		out = base.Clone()
	} else if sys, err := x509.SystemCertPool(); err == nil {
		out = sys
	} else {
		out = x509.NewCertPool()
	}
	for _, c := range extra {
		out.AddCert(c)
	}
	return out
}

// Classes of targets behind a site (keychest-agent).
const (
	// ClassAgentRefused: the site's agent refused the address (its allow.conf); no packet was sent.
	ClassAgentRefused Class = "agent_refused"
	// ClassAgentUnavailable: no agent of the site called in lately; the target was not probed.
	ClassAgentUnavailable Class = "agent_unavailable"
)
