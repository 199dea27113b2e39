// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"crypto/x509"
	"net/netip"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/certtest"
)

// A target that has never served a certificate is unknown, before and
// after its failure is confirmed; once one was seen, a failure reads as
// before (ok until confirmed, then the finding's severity).
func TestNeverServedIsUnknown(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, _ := certtest.NewCA("Root", start)
	cert := leaf(t, ca, certtest.Leaf{Names: []string{"a.test"}, NotBefore: start, NotAfter: start.Add(90 * day)})
	j := newJudged()
	now := start.Add(day)
	for i, step := range []struct {
		res  Result
		want string
	}{
		{failedAt("127.0.0.2", ClassTimeout), StateUnknown}, // used to read ok
		{failedAt("127.0.0.2", ClassTimeout), StateUnknown}, // unreachable confirmed: still no certificate to judge
		{Result{Host: "a.test", Port: 443, Class: ClassDNSError}, StateUnknown},
		{served(map[string]*x509.Certificate{"127.0.0.2": cert}, nil), StateCritical}, // unreachable closes on a second look
		{served(map[string]*x509.Certificate{"127.0.0.2": cert}, nil), StateOK},
		{failedAt("127.0.0.2", ClassTimeout), StateOK},       // seen before: one failure waits for a second
		{failedAt("127.0.0.2", ClassTimeout), StateCritical}, // confirmed
	} {
		now = now.Add(time.Hour)
		if v := j.probe(step.res, now); v.State != step.want {
			t.Fatalf("probe %d (%s): state %q, want %q", i+1, step.res.Class, v.State, step.want)
		}
	}
	if j.severity(finding.KindUnreach) != finding.Critical {
		t.Fatalf("unreachable: %q", j.severity(finding.KindUnreach))
	}
}

// Whether a certificate was ever seen comes from the store (the history of
// observations), not only from the current ones: a target whose current
// rows are failures but that served a certificate before is not unknown.
func TestCertSeenInHistoryIsNotUnknown(t *testing.T) {
	j := newJudged()
	j.target.CertSeen = true
	if v := j.probe(failedAt("127.0.0.2", ClassRefused), time.Now()); v.State != StateOK {
		t.Fatalf("state %q, want ok until the failure is confirmed", v.State)
	}
}

// Through the store: a target that never served a certificate reads
// unknown with the class of its failure, even once the failure is
// confirmed; one whose certificate row has ended (its address now
// refuses) reads ok until the failure is confirmed, and is leased as
// having seen a certificate although no current row holds one.
func TestLeaseKnowsACertificateWasSeen(t *testing.T) {
	w := newWorld(t)
	srv := w.serve("127.0.0.2", "seen.test", 90*day, 60*day)
	key := w.register("ops@example.com", true, srv.Port(), "seen.test", "never.test")
	w.dns["never.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.3")} // nothing listens there: refused
	m := w.monitor("m")
	w.round(m)
	if s := w.status(key, "never.test", srv.Port()); s.State != StateUnknown || s.Class != string(ClassRefused) {
		t.Fatalf("never served, after a probe: %+v", s)
	}
	srv.Close()
	w.advance(7 * time.Hour)
	w.round(m)
	if s := w.status(key, "seen.test", srv.Port()); s.State != StateOK || s.Class != string(ClassRefused) {
		t.Fatalf("served before, one failure: %+v", s)
	}
	if s := w.status(key, "never.test", srv.Port()); s.State != StateUnknown || len(s.Findings) != 1 || s.Findings[0] != finding.KindUnreach {
		t.Fatalf("never served, failure confirmed: %+v", s)
	}
	w.advance(6 * time.Minute) // seen.test's retry is due, never.test's (15 min after a confirmed failure) is not
	leased, err := w.db.Lease(context.Background(), "probe", w.now, w.now.Add(time.Minute), 10)
	if err != nil || len(leased) != 1 || leased[0].Name != "seen.test" {
		t.Fatalf("lease: %v %+v", err, leased)
	}
	if l := leased[0]; !l.CertSeen || l.Served[netip.MustParseAddr("127.0.0.2")].Fingerprint != nil {
		t.Fatalf("a certificate seen only in the history: CertSeen %v, served %+v", l.CertSeen, l.Served)
	}
}
