// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"crypto/sha256"
	"crypto/x509"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/certtest"
)

// judged carries a target's past from one verdict to the next, the way
// the store does, so a test can run a sequence of probes.
type judged struct {
	policy Policy
	target finding.Target
	log    []finding.Verdict
}

func newJudged() *judged {
	p := DefaultPolicy()
	p.Jitter = nil
	return &judged{policy: p, target: finding.Target{ID: 1, Name: "a.test", Port: 443,
		Served: map[netip.Addr]finding.Served{}, Open: map[string]finding.OpenFinding{}}}
}

// probe judges res at now and applies the verdict to the remembered past.
func (j *judged) probe(res Result, now time.Time) finding.Verdict {
	v := j.policy.Judge(j.target, res, now)
	j.log = append(j.log, v)
	t := &j.target
	t.Failures, t.Suspects, t.LastChecked = v.Failures, v.Suspects, now
	for _, o := range v.Observe {
		t.CertSeen = t.CertSeen || o.Fingerprint != nil
		s := finding.Served{Fingerprint: o.Fingerprint, ErrorClass: o.ErrorClass}
		for _, a := range res.Addresses {
			if a.Address == o.Address && len(a.Chain) > 0 {
				s.NotBefore, s.NotAfter = a.Chain[0].NotBefore, a.Chain[0].NotAfter
			}
		}
		t.Served[o.Address] = s
	}
	for _, a := range v.Gone {
		delete(t.Served, a)
	}
	for _, f := range append(v.Open, v.Change...) {
		t.Open[f.Kind] = finding.OpenFinding{Kind: f.Kind, Severity: f.Severity, Detail: f.Detail}
	}
	for _, k := range v.Close {
		delete(t.Open, k)
	}
	return v
}

func (j *judged) severity(kind string) string { return j.target.Open[kind].Severity }

// served is a result in which each address serves its certificate.
func served(certs map[string]*x509.Certificate, problems map[string][]Class) Result {
	res := Result{Host: "a.test", Port: 443, Class: ClassOK}
	for ip, c := range certs {
		a := AddressResult{Address: netip.MustParseAddr(ip), Class: ClassOK, Chain: []*x509.Certificate{c},
			TLSVersion: "TLS 1.3", Problems: problems[ip]}
		if len(a.Problems) > 0 {
			a.Class = a.Problems[0]
		}
		res.Addresses = append(res.Addresses, a)
	}
	slices.SortFunc(res.Addresses, func(a, b AddressResult) int { return a.Address.Compare(b.Address) })
	return res
}

func failedAt(ip string, c Class) Result {
	return Result{Host: "a.test", Port: 443, Class: c,
		Addresses: []AddressResult{{Address: netip.MustParseAddr(ip), Class: c, Detail: "connect: connection refused"}}}
}

func leaf(t *testing.T, ca *certtest.CA, l certtest.Leaf) *x509.Certificate {
	t.Helper()
	c, err := ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// The thresholds follow the lifetime: for 6-, 47- and 90-day certificates
// the warning starts at a quarter of the lifetime (at most 30 days) and
// critical at a tenth (at most 7 days), and expired is its own severity.
func TestThresholdsFollowLifetime(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, _ := certtest.NewCA("Root", start)
	for _, c := range []struct {
		life       time.Duration
		warn, crit time.Duration // time left at which each starts
	}{
		{6 * day, 36 * time.Hour, 14*time.Hour + 24*time.Minute},
		{47 * day, 47 * day / 4, 47 * day / 10},
		{90 * day, 90 * day / 4, 7 * day},
		{398 * day, 30 * day, 7 * day},
	} {
		cert := leaf(t, ca, certtest.Leaf{Names: []string{"a.test"}, NotBefore: start, NotAfter: start.Add(c.life)})
		res := served(map[string]*x509.Certificate{"127.0.0.2": cert}, nil)
		at := func(left time.Duration) string {
			j := newJudged()
			j.probe(res, cert.NotAfter.Add(-left))
			return j.severity(finding.KindExpiry)
		}
		for _, step := range []struct {
			left time.Duration
			want string
		}{
			{c.warn + time.Minute, ""},
			{c.warn - time.Minute, finding.Warning},
			{c.crit + time.Minute, finding.Warning},
			{c.crit - time.Minute, finding.Critical},
			{time.Minute, finding.Critical},
			{-time.Minute, finding.Expired},
		} {
			if got := at(step.left); got != step.want {
				t.Errorf("%v lifetime, %v left: severity %q, want %q", c.life, step.left, got, step.want)
			}
		}
	}
}

// Severity rises warning, critical, expired; a renewal on every address
// closes the finding and records one renewal.
func TestRiseAndRenewal(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, _ := certtest.NewCA("Root", start)
	old := leaf(t, ca, certtest.Leaf{Names: []string{"a.test"}, NotBefore: start, NotAfter: start.Add(90 * day)})
	two := map[string]*x509.Certificate{"127.0.0.2": old, "127.0.0.3": old}
	j := newJudged()
	v := j.probe(served(two, nil), start.Add(30*day))
	if len(v.Open) != 0 || v.State != StateOK || len(v.Observe) != 2 || len(v.Certs) != 2 {
		t.Fatalf("healthy first probe: %+v", v)
	}
	if due := v.NextDue.Sub(v.CheckedAt); due != 6*time.Hour {
		t.Fatalf("next due after %v, want 6h", due)
	}
	v = j.probe(served(two, nil), start.Add(31*day))
	if len(v.Observe)+len(v.Certs)+len(v.Open)+len(v.Change)+len(v.Close)+len(v.Events) != 0 {
		t.Fatalf("unchanged probe writes history: %+v", v)
	}
	v = j.probe(served(two, nil), start.Add(70*day))
	if len(v.Open) != 1 || j.severity(finding.KindExpiry) != finding.Warning || v.State != StateWarning {
		t.Fatalf("warning: %+v", v)
	}
	if due := v.NextDue.Sub(v.CheckedAt); due != time.Hour {
		t.Fatalf("next due after %v while in warning, want 1h", due)
	}
	j.probe(served(two, nil), start.Add(84*day))
	j.probe(served(two, nil), start.Add(85*day))
	if j.severity(finding.KindExpiry) != finding.Critical {
		t.Fatalf("critical: %q", j.severity(finding.KindExpiry))
	}
	j.probe(served(two, nil), start.Add(91*day))
	if j.severity(finding.KindExpiry) != finding.Expired || j.target.Open[finding.KindExpiry].Kind == "" {
		t.Fatalf("expired: %q", j.severity(finding.KindExpiry))
	}
	changes := 0
	for _, v := range j.log {
		changes += len(v.Change)
	}
	if changes != 2 {
		t.Fatalf("%d severity changes, want 2 (warning to critical to expired)", changes)
	}
	fresh := leaf(t, ca, certtest.Leaf{Names: []string{"a.test"}, NotBefore: start.Add(91 * day), NotAfter: start.Add(181 * day)})
	// One address renewed: no renewal yet, and the old one is a stale endpoint (once confirmed).
	half := map[string]*x509.Certificate{"127.0.0.2": fresh, "127.0.0.3": old}
	v = j.probe(served(half, nil), start.Add(91*day+time.Hour))
	if len(v.Events) != 0 || !slices.Contains(v.Suspects, finding.KindStale) {
		t.Fatalf("half renewed: %+v", v)
	}
	v = j.probe(served(map[string]*x509.Certificate{"127.0.0.2": fresh, "127.0.0.3": fresh}, nil), start.Add(91*day+2*time.Hour))
	if len(v.Events) != 1 || v.Events[0].Kind != "renewed" || !slices.Equal(v.Close, []string{finding.KindExpiry}) || v.State != StateOK {
		t.Fatalf("renewal: %+v", v)
	}
}

// One failed probe is a blip: no finding, a retry in 5 min. A second
// failure opens "unreachable"; later retries wait 15 min, then 1 h.
func TestBlipGivesNoFinding(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, _ := certtest.NewCA("Root", start)
	cert := leaf(t, ca, certtest.Leaf{Names: []string{"a.test"}, NotBefore: start, NotAfter: start.Add(90 * day)})
	good := served(map[string]*x509.Certificate{"127.0.0.2": cert}, nil)
	j := newJudged()
	now := start.Add(day)
	j.probe(good, now)
	v := j.probe(failedAt("127.0.0.2", ClassRefused), now.Add(6*time.Hour))
	if len(v.Open) != 0 || v.State != StateOK || v.NextDue.Sub(v.CheckedAt) != 5*time.Minute {
		t.Fatalf("blip: %+v", v)
	}
	v = j.probe(good, now.Add(6*time.Hour+5*time.Minute))
	if len(v.Open) != 0 || len(v.Suspects) != 0 || v.Failures != 0 {
		t.Fatalf("after the blip: %+v", v)
	}
	for i, wait := range []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour, time.Hour} {
		v = j.probe(failedAt("127.0.0.2", ClassRefused), now.Add(time.Duration(7+i)*time.Hour))
		if got := v.NextDue.Sub(v.CheckedAt); got != wait {
			t.Errorf("failure %d: retry after %v, want %v", i+1, got, wait)
		}
	}
	if j.severity(finding.KindUnreach) != finding.Critical || len(j.target.Open) != 1 {
		t.Fatalf("confirmed outage: %+v", j.target.Open)
	}
	// Back up: the finding closes only when a second probe confirms it,
	// so a flapping host does not mail "resolved" and "problem" by turns.
	v = j.probe(good, now.Add(12*time.Hour))
	if len(v.Close) != 0 || !slices.Equal(v.Suspects, []string{"clear:" + finding.KindUnreach}) || v.NextDue.Sub(v.CheckedAt) != 5*time.Minute {
		t.Fatalf("first good probe: %+v", v)
	}
	v = j.probe(failedAt("127.0.0.2", ClassRefused), now.Add(12*time.Hour+5*time.Minute))
	if len(v.Close)+len(v.Open) != 0 || j.severity(finding.KindUnreach) != finding.Critical {
		t.Fatalf("down again: %+v", v)
	}
	j.probe(good, now.Add(13*time.Hour))
	v = j.probe(good, now.Add(13*time.Hour+5*time.Minute))
	if !slices.Equal(v.Close, []string{finding.KindUnreach}) || len(v.Suspects) != 0 {
		t.Fatalf("recovery: %+v", v)
	}
}

// Two addresses: one serves a certificate older than the other's. The
// stale endpoint is reported once confirmed, naming the old address.
func TestStaleEndpoint(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, _ := certtest.NewCA("Root", start)
	old := leaf(t, ca, certtest.Leaf{Names: []string{"a.test"}, NotBefore: start, NotAfter: start.Add(90 * day)})
	fresh := leaf(t, ca, certtest.Leaf{Names: []string{"a.test"}, NotBefore: start.Add(60 * day), NotAfter: start.Add(150 * day)})
	res := served(map[string]*x509.Certificate{"127.0.0.2": fresh, "127.0.0.3": old}, nil)
	j := newJudged()
	j.probe(res, start.Add(61*day))
	v := j.probe(res, start.Add(61*day+5*time.Minute))
	if len(v.Open) != 1 || v.Open[0].Kind != finding.KindStale {
		t.Fatalf("stale endpoint not opened: %+v", v)
	}
	if d := v.Open[0].Detail; !contains(d, "127.0.0.3 still serves") || contains(d, "127.0.0.2 still") {
		t.Fatalf("detail %q", d)
	}
}

// Untrusted, mismatched, revoked and weak certificates are findings;
// weak opens at once, the others once confirmed.
func TestCertificateFindings(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ca, _ := certtest.NewCA("Root", start)
	weak := leaf(t, ca, certtest.Leaf{Names: []string{"a.test"}, NotBefore: start, NotAfter: start.Add(90 * day), RSABits: 1024})
	j := newJudged()
	res := served(map[string]*x509.Certificate{"127.0.0.2": weak},
		map[string][]Class{"127.0.0.2": {ClassRevoked, ClassUntrusted, ClassMismatch}})
	v := j.probe(res, start.Add(day))
	if len(v.Open) != 1 || v.Open[0].Kind != finding.KindWeak || len(v.Suspects) != 3 {
		t.Fatalf("first probe: %+v", v)
	}
	v = j.probe(res, start.Add(day+5*time.Minute))
	var kinds []string
	for _, f := range v.Open {
		kinds = append(kinds, f.Kind)
	}
	if !slices.Equal(kinds, []string{finding.KindMismatch, finding.KindRevoked, finding.KindUntrusted}) || v.State != StateCritical {
		t.Fatalf("confirmed: %v %+v", kinds, v)
	}
}

func TestObservationFingerprint(t *testing.T) {
	ca, _ := certtest.NewCA("Root", time.Now())
	c := leaf(t, ca, certtest.Lifetime(time.Now(), 90*day, 60*day, "a.test"))
	o := observation(AddressResult{Address: netip.MustParseAddr("127.0.0.2"), Class: ClassOK, Chain: []*x509.Certificate{c, ca.Cert}})
	want := sha256.Sum256(c.Raw)
	if string(o.Fingerprint) != string(want[:]) || len(o.Chain) != 1 || o.ErrorClass != "" {
		t.Fatalf("observation %+v", o)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func certLeaf(now time.Time, life, left time.Duration, names ...string) certtest.Leaf {
	return certtest.Lifetime(now, life, left, names...)
}
