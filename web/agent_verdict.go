// SPDX-License-Identifier: Apache-2.0

package web

import (
	"encoding/json"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/store"
)

// relayProbe is what is stored of one probe through a relay.
type relayProbe struct {
	Class     string     `json:"class"`
	Detail    string     `json:"detail"`
	NotBefore *time.Time `json:"not_before"`
	NotAfter  *time.Time `json:"not_after"`
	Issuer    string     `json:"issuer"`
}

// certProblems are the classes of a certificate that was served but is
// wrong: the target is critical, as the monitor's findings make it.
var certProblems = map[string]bool{string(monitor.ClassExpired): true, string(monitor.ClassUntrusted): true,
	string(monitor.ClassMismatch): true, string(monitor.ClassRevoked): true, string(monitor.ClassNotYetValid): true}

// siteVerdict judges a finished job from the agent's report and the
// probes through its relays: the class of the first failing address (or
// agent_refused when allow.conf refused some), and a state from the
// soonest expiry by the monitor's default thresholds.
func siteVerdict(res agent.JobResult, stored [][]byte, now time.Time) store.SiteTargetResult {
	v := store.SiteTargetResult{State: "unknown"}
	refused := false
	for _, a := range res.Addresses {
		switch a.Outcome {
		case agent.OutcomeRefused:
			refused = true
		case agent.OutcomeUnreachable:
			v.Class, v.Detail = string(monitor.ClassRefused), a.Detail
		}
	}
	if res.Outcome == agent.OutcomeRefused {
		v.Class, v.Detail = string(monitor.ClassAgentRefused), "the agent's allow.conf refused every address: no packet was sent"
		return v
	}
	var soonest *relayProbe
	for _, raw := range stored {
		var p relayProbe
		if json.Unmarshal(raw, &p) != nil {
			continue
		}
		v.Addresses++
		if p.Class != string(monitor.ClassOK) && (v.Class == "" || v.Class == string(monitor.ClassRefused)) {
			v.Class, v.Detail = p.Class, p.Detail
		}
		if p.NotAfter != nil && (soonest == nil || p.NotAfter.Before(*soonest.NotAfter)) {
			soonest = &p
		}
	}
	if v.Class == "" && refused {
		v.Class, v.Detail = string(monitor.ClassAgentRefused), "the agent's allow.conf refused some addresses"
	}
	if soonest == nil || soonest.NotBefore == nil {
		return v
	}
	v.NotAfter, v.Issuer = soonest.NotAfter, soonest.Issuer
	switch sev := monitor.DefaultPolicy().ExpirySeverity(*soonest.NotBefore, *soonest.NotAfter, now); {
	case certProblems[v.Class] || sev == finding.Expired || sev == finding.Critical:
		v.State = "critical"
	case sev == finding.Warning:
		v.State = "warning"
	default:
		v.State = "ok"
	}
	return v
}
