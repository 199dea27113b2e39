// SPDX-License-Identifier: Apache-2.0

package finding

import (
	"net/netip"
	"time"
)

// CertInfo is what is recorded of one certificate; it is stored once per
// fingerprint.
type CertInfo struct {
	Fingerprint [32]byte  `json:"-"`
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	IssuerCN    string    `json:"issuer_cn"`
	Serial      string    `json:"serial"`
	SANs        []string  `json:"sans"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	KeyType     string    `json:"key_type"`
	KeyBits     int       `json:"key_bits"`
	SigAlg      string    `json:"signature_algorithm"`
}

// Target is a monitored name:port as the judge needs it: its past.
type Target struct {
	ID          int64
	Name        string
	Port        int
	LastChecked time.Time // zero before the first probe
	CertSeen    bool      // some address served a certificate at some probe (as far as history is kept)
	Failures    int       // consecutive probes with an unconfirmed problem
	Suspects    []string  // finding kinds seen once, or "clear:KIND" for one seen gone once, waiting for confirmation
	Served      map[netip.Addr]Served
	Open        map[string]OpenFinding
}

// Served is what one address served at its last probe.
type Served struct {
	Fingerprint []byte // nil when the address failed
	ErrorClass  string // "" when it served a valid certificate
	NotBefore   time.Time
	NotAfter    time.Time
}

// OpenFinding is a finding not yet closed.
type OpenFinding struct {
	Kind     string
	Severity string
	Detail   string
	OpenedAt time.Time
}

// Verdict is what one probe (or one batch of ACME events) changes of a
// target. The monitor's is written back only while the monitor still
// holds the target's lease; when nothing changed it rewrites the target's
// row and nothing else.
type Verdict struct {
	TargetID  int64
	StartedAt time.Time // when the probe began
	CheckedAt time.Time // when it ended
	NextDue   time.Time
	State     string // ok, warning or critical; unknown while no certificate has ever been seen
	Failures  int
	Suspects  []string
	Certs     []CertInfo    // certificates the new observations refer to
	Observe   []Observation // addresses that serve something new: each gets a new current row
	Gone      []netip.Addr  // addresses the name no longer resolves to
	Open      []Finding
	Change    []Finding // open findings whose severity or detail changed
	Close     []string  // kinds of open findings that are gone
	Events    []Event
	// Account is whose findings these are: an ACME finding's account,
	// the only one told of it; 0 for the monitor's, told to every owner.
	Account int64
}

// Observation is what one address served, as a new history row.
type Observation struct {
	Address     netip.Addr
	Fingerprint []byte   // the leaf; nil when the address failed
	Chain       [][]byte // fingerprints of the certificates after the leaf
	TLSVersion  string
	ErrorClass  string
	ErrorDetail string
}

// Finding is a finding's kind, severity and what it says.
type Finding struct {
	Kind     string
	Severity string
	Detail   string
}

// Event is a renewal or another change worth a line in a digest.
type Event struct {
	Kind   string
	Detail string
}
