// SPDX-License-Identifier: Apache-2.0

package web

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/monitor"
)

// What the judge is given of a finished job: the stored probes, the
// addresses the agent could not dial (once each, at most 16), its failed
// lookup; never an address allow.conf refused; nothing at all when no
// probe was stored (the relays were cut).
func TestSiteResult(t *testing.T) {
	stored, _ := json.Marshal(relayProbe{Address: mustAddr("10.0.0.1"), Class: "ok"})
	unreach := agent.AddressOutcome{Address: "10.0.0.2", Outcome: agent.OutcomeUnreachable, Detail: "dial tcp 10.0.0.2:636: i/o timeout"}
	refused := agent.AddressOutcome{Address: "10.0.0.3", Outcome: agent.OutcomeRefused}
	res, ok := siteResult("ldap.corp.example", 636, agent.JobResult{Outcome: agent.OutcomeOK,
		Addresses: []agent.AddressOutcome{{Address: "10.0.0.1", Outcome: agent.OutcomeRelayed}, unreach, unreach, refused}}, [][]byte{stored})
	if !ok || len(res.Addresses) != 2 || res.Addresses[1].Class != monitor.ClassTimeout || res.Class != monitor.ClassTimeout {
		t.Fatalf("relayed, unreachable, refused: %+v %v", res, ok)
	}
	if _, ok := siteResult("x", 636, agent.JobResult{Outcome: agent.OutcomeOK,
		Addresses: []agent.AddressOutcome{{Address: "10.0.0.1", Outcome: agent.OutcomeRelayed}}}, nil); ok {
		t.Fatal("a job whose relay stored nothing was judged")
	}
	res, ok = siteResult("x", 636, agent.JobResult{Outcome: agent.OutcomeUnavailable,
		Addresses: []agent.AddressOutcome{{Outcome: agent.OutcomeUnreachable, Detail: "lookup x: no such host"}}}, nil)
	if !ok || res.Class != monitor.ClassNXDomain || len(res.Addresses) != 0 {
		t.Fatalf("failed lookup: %+v %v", res, ok)
	}
	var many []agent.AddressOutcome
	for i := range 100 {
		many = append(many, agent.AddressOutcome{Address: "10.1.0." + strconv.Itoa(i), Outcome: agent.OutcomeUnreachable, Detail: "refused"})
	}
	if res, _ := siteResult("x", 636, agent.JobResult{Outcome: agent.OutcomeUnavailable, Addresses: many}, nil); len(res.Addresses) != 16 {
		t.Fatalf("addresses judged from one report: %d", len(res.Addresses))
	}
}
