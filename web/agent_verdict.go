// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/store"
)

// relayProbe is what is stored of one probe through a relay: enough to
// give the monitor's judge the same AddressResult the probe made, in
// whichever process finishes the job.
type relayProbe struct {
	Address  netip.Addr `json:"address"`
	Class    string     `json:"class"`
	Detail   string     `json:"detail"`
	TLS      string     `json:"tls"`
	Problems []string   `json:"problems,omitempty"`
	// Revocation is what the service's own revocation check told.
	Revocation string   `json:"revocation,omitempty"`
	Chain      [][]byte `json:"chain,omitempty"` // DER, leaf first
}

// relayOutcome is what is stored of a probe through a relay.
func relayOutcome(res monitor.AddressResult) relayProbe {
	p := relayProbe{Address: res.Address, Class: string(res.Class), Detail: res.Detail, TLS: res.TLSVersion, Revocation: res.Revocation}
	for _, c := range res.Problems {
		p.Problems = append(p.Problems, string(c))
	}
	for _, c := range res.Chain {
		p.Chain = append(p.Chain, c.Raw)
	}
	return p
}

// addressResult is the probe back as the monitor made it; false when
// its chain does not parse.
func (p relayProbe) addressResult() (monitor.AddressResult, bool) {
	a := monitor.AddressResult{Address: p.Address, Class: monitor.Class(p.Class), Detail: p.Detail, TLSVersion: p.TLS,
		Revocation: p.Revocation}
	for _, c := range p.Problems {
		a.Problems = append(a.Problems, monitor.Class(c))
	}
	for _, der := range p.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return a, false
		}
		a.Chain = append(a.Chain, c)
	}
	return a, true
}

// siteResult is the monitor's Result of a finished job: the probes through
// its relays (stored by the processes that took them), and the addresses
// the agent could not dial, or its failed lookup, as the central monitor
// would have seen them. Addresses allow.conf refused are not probed and
// not judged. False when nothing was probed: a job whose relays were all
// cut (its agent died) gives no verdict, never a wrong finding.
func siteResult(name string, port int, res agent.JobResult, stored [][]byte) (monitor.Result, bool) {
	out := monitor.Result{Host: name, Port: port, Class: monitor.ClassOK}
	seen := map[netip.Addr]bool{}
	for _, raw := range stored {
		var p relayProbe
		if json.Unmarshal(raw, &p) != nil || !p.Address.IsValid() {
			continue
		}
		if a, ok := p.addressResult(); ok {
			out.Addresses = append(out.Addresses, a)
			seen[a.Address] = true
		}
	}
	for _, a := range res.Addresses {
		if a.Outcome != agent.OutcomeUnreachable {
			continue
		}
		addr, err := netip.ParseAddr(a.Address)
		if err != nil { // the agent's lookup failed: no address at all
			if len(res.Addresses) == 1 && len(out.Addresses) == 0 {
				out.Class, out.Detail = lookupClass(a.Detail), a.Detail
				return out, true
			}
			continue
		}
		if addr = addr.Unmap(); !seen[addr] && len(out.Addresses) < store.MaxRelaysPerJob {
			seen[addr] = true // an agent's report counts each address once, and at most as many as a job may relay
			out.Addresses = append(out.Addresses, monitor.AddressResult{Address: addr, Class: dialClass(a.Detail), Detail: a.Detail})
		}
	}
	for _, a := range out.Addresses {
		if a.Class != monitor.ClassOK {
			out.Class, out.Detail = a.Class, a.Detail
			break
		}
	}
	return out, len(out.Addresses) > 0
}

// lookupClass and dialClass name the agent's failures with the monitor's
// classes, from the error text it reported.
func lookupClass(detail string) monitor.Class {
	if strings.Contains(detail, "no such host") {
		return monitor.ClassNXDomain
	}
	return monitor.ClassDNSError
}

func dialClass(detail string) monitor.Class {
	if strings.Contains(detail, "timeout") || strings.Contains(detail, "deadline") {
		return monitor.ClassTimeout
	}
	return monitor.ClassRefused
}

// judge records finished jobs' verdicts, in a few transactions for all
// of them: a job that relayed something goes through the monitor's judge
// and write-back (findings, history, alert mails, as for a public
// target); a job allow.conf refused whole records the class
// agent_refused.
func (h *agentJobs) judge(ctx context.Context, done []agent.JobResult) error {
	if len(done) == 0 {
		return nil
	}
	now := time.Now()
	var verdicts []store.JobVerdict
	var relayed []int64
	byJob := make(map[int64]agent.JobResult, len(done))
	for _, res := range done {
		if res.Outcome == agent.OutcomeRefused {
			verdicts = append(verdicts, store.JobVerdict{Job: res.ID, Result: store.SiteTargetResult{Class: string(monitor.ClassAgentRefused),
				Detail: "the agent's allow.conf refused every address: no packet was sent", Next: h.limits.Policy.Interval}})
			continue
		}
		relayed, byJob[res.ID] = append(relayed, res.ID), res
	}
	leased, err := h.st.LeaseSiteJobs(ctx, relayed, h.owner, now, now.Add(time.Minute))
	if err != nil {
		return err
	}
	var vs []finding.Verdict
	var unseen []int64
	for _, sj := range leased {
		result, probed := siteResult(sj.Target.Name, sj.Target.Port, byJob[sj.Job], sj.Relays)
		if !probed {
			// Nothing seen: the row is let go, and the target is due again
			// as after a failed probe.
			unseen = append(unseen, sj.Target.ID)
			verdicts = append(verdicts, store.JobVerdict{Job: sj.Job, Result: store.SiteTargetResult{Next: firstRetry(h.limits.Policy)}})
			continue
		}
		v := h.limits.Policy.Judge(sj.Target, result, now)
		v.StartedAt = now
		vs = append(vs, v)
		verdicts = append(verdicts, store.JobVerdict{Job: sj.Job, Result: store.SiteTargetResult{State: v.State, Class: classOf(result),
			Detail: result.Detail, Addresses: len(result.Addresses), Next: v.NextDue.Sub(now), Revocation: revocationOf(result)}})
	}
	if len(unseen) > 0 {
		if err := h.st.Release(ctx, h.owner, unseen); err != nil {
			return err
		}
	}
	if len(vs) > 0 {
		if _, err := h.st.WriteBack(ctx, h.owner, vs, h.limits.AlertBatch); err != nil {
			return err
		}
	}
	return h.st.SetSiteTargetResults(ctx, verdicts)
}

// revocationOrder ranks the revocation answers, the one to show first.
var revocationOrder = []string{monitor.RevocationRevoked, monitor.RevocationUnknown, monitor.RevocationOK, monitor.RevocationNone}

// revocationOf is what the revocation checks of a result's addresses told,
// the worst of them: revoked, then unknown (never read as ok), then ok,
// then none; "" when no check was made.
func revocationOf(r monitor.Result) string {
	best := len(revocationOrder)
	for _, a := range r.Addresses {
		if i := slices.Index(revocationOrder, a.Revocation); i >= 0 && i < best {
			best = i
		}
	}
	if best == len(revocationOrder) {
		return ""
	}
	return revocationOrder[best]
}

// firstRetry is the policy's first retry, or its interval.
func firstRetry(p monitor.Policy) time.Duration {
	if len(p.Retries) > 0 {
		return p.Retries[0]
	}
	return p.Interval
}

// classOf is the class "cert" shows: the first failing address's, or "".
func classOf(r monitor.Result) string {
	if r.Class == monitor.ClassOK {
		return ""
	}
	return string(r.Class)
}
