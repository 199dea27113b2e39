// SPDX-License-Identifier: Apache-2.0

package acme

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/finding"
)

var at = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// ev is an event of proxy p1 at the time at, with params.
func ev(msg, params string) Event {
	return Event{Proxy: "p1@amp.test", ID: 1, Msg: msg, Time: at, Params: json.RawMessage(params)}
}

const (
	orderValid = `{"server":"ca.test","account":"/acct/1","status":"valid","order":"/o/1",
		"identifiers":[{"type":"dns","value":"A.example."},{"type":"dns","value":"*.b.example"},{"type":"ip","value":"127.0.0.1"}]}`
	orderPending = `{"server":"ca.test","account":"/acct/1","status":"pending","domains":[{"type":"dns","value":"a.example"}]}`
	authInvalid  = `{"server":"ca.test","account":"/acct/1","status":"invalid","identifier":{"type":"dns","value":"a.example"},
		"error":{"type":"urn:ietf:params:acme:error:unauthorized","detail":"404 at /.well-known"}}`
	challInvalid = `{"server":"ca.test","account":"/acct/1","status":"invalid","type":"http-01","identifier":{"type":"dns","value":"a.example"},
		"error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused"}}`
	rateLimitedNoNames = `{"server":"ca.test","account":"/acct/1","problem":{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many"}}`
	rateLimitedSub     = `{"server":"ca.test","account":"/acct/1","problem":{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no",
		"subproblems":[{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many","identifier":{"type":"dns","value":"c.example"}}]}}`
	badNonce = `{"server":"ca.test","account":"/acct/1","problem":{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale"}}`
)

func TestJudgeEvent(t *testing.T) {
	acct := Account{Proxy: "p1@amp.test", Server: "ca.test", ID: "/acct/1"}
	open := func(names []string, onAccount bool, kind, detail string) Change {
		return Change{Names: names, OnAccount: onAccount, Account: acct, At: at,
			Open: &finding.Finding{Kind: kind, Severity: finding.Warning, Detail: detail}}
	}
	for _, c := range []struct {
		name string
		e    Event
		want []Change
	}{
		{"a valid order closes every ACME finding on its names", ev("final", orderValid),
			[]Change{{Names: []string{"a.example", "b.example"}, Account: acct, At: at, Close: finding.ACMEKinds, Why: WhyValid}}},
		{"any other order closes not-renewing", ev("new-order", orderPending),
			[]Change{{Names: []string{"a.example"}, Account: acct, At: at, Close: []string{finding.KindACMENotRenewing}, Why: WhyOrdered}}},
		{"an authorization gone invalid", ev("auth", authInvalid),
			[]Change{open([]string{"a.example"}, false, finding.KindACMEInvalid, "the authorization went invalid at ca.test: unauthorized: 404 at /.well-known")}},
		{"a challenge gone invalid", ev("chall", challInvalid),
			[]Change{open([]string{"a.example"}, false, finding.KindACMEInvalid, "the http-01 challenge went invalid at ca.test: connection: refused")}},
		{"rate limited with no names: on the account's domains", ev("new-order", rateLimitedNoNames), []Change{
			{Account: acct, At: at, Close: []string{finding.KindACMENotRenewing}, Why: WhyOrdered},
			open(nil, true, finding.KindACMERateLimited, "rate limited by ca.test: too many")}},
		{"rate limited in a subproblem: on its name", ev("new-order", rateLimitedSub), []Change{
			{Names: []string{"c.example"}, Account: acct, At: at, Close: []string{finding.KindACMENotRenewing}, Why: WhyOrdered},
			open([]string{"c.example"}, false, finding.KindACMERateLimited, "rate limited by ca.test: no")}},
		{"a valid authorization changes nothing", ev("auth", `{"status":"valid","identifier":{"type":"dns","value":"a.example"}}`), nil},
		{"a badNonce alone changes nothing", ev("new-nonce", badNonce), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := JudgeEvent(Read(c.e, time.Time{}))
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestStormAndFailingThresholds(t *testing.T) {
	nonce := Read(ev("new-order", badNonce), time.Time{})
	fail := Read(ev("auth", authInvalid), time.Time{})
	for _, c := range []struct {
		name string
		got  []Change
		kind string
	}{
		{"below the storm", Storm(nonce, BadNonceStorm-1), ""},
		{"a storm", Storm(nonce, BadNonceStorm), finding.KindACMEBadNonce},
		{"below failing", Failing(fail, AccountFailures-1), ""},
		{"failing", Failing(fail, AccountFailures), finding.KindACMEAccountFailing},
	} {
		switch {
		case c.kind == "" && c.got != nil:
			t.Errorf("%s: %+v", c.name, c.got)
		case c.kind != "" && (len(c.got) != 1 || !c.got[0].OnAccount || c.got[0].Open.Kind != c.kind || c.got[0].Account != nonce.Account):
			t.Errorf("%s: %+v", c.name, c.got)
		}
	}
	if d := Failing(fail, 7)[0].Open.Detail; d != "ACME account /acct/1 at ca.test (proxy p1@amp.test): 7 failures within 24h0m0s and no valid order since; last: unauthorized: 404 at /.well-known" {
		t.Errorf("failing detail: %s", d)
	}
	if d := Storm(nonce, 12)[0].Open.Detail; !strings.HasPrefix(d, "12 badNonce errors from ca.test within 10m0s for ACME account /acct/1: stale") {
		t.Errorf("storm detail: %s", d)
	}
}

func TestToCount(t *testing.T) {
	a := Read(ev("new-order", badNonce), time.Time{})
	b := Read(ev("auth", authInvalid), time.Time{})
	none := Read(ev("new-order", `{"problem":{"type":"urn:ietf:params:acme:error:badNonce"}}`), time.Time{})
	ok := Read(ev("final", orderValid), time.Time{})
	nonces, failures := ToCount([]Facts{a, b, none, ok})
	if len(nonces) != 1 || nonces[a.Account].Msg != "new-order" || len(failures) != 1 || failures[b.Account].Msg != "auth" {
		t.Errorf("nonces %+v failures %+v", nonces, failures)
	}
}

func TestReadIssuedAndCost(t *testing.T) {
	f := Read(ev("order", `{"status":"valid","identifiers":[{"type":"dns","value":"a.example"},{"type":"dns","value":"b.example:8443"},
		{"type":"dns","value":"*.c.example"},{"type":"ip","value":"127.0.0.1"}],"domains":[{"type":"dns","value":"d.example"}]}`), time.Time{})
	if got := f.Issued(); !reflect.DeepEqual(got, []string{"a.example", "*.c.example", "d.example"}) {
		t.Errorf("issued %v", got)
	}
	if f.Rows() != 1+3 { // d, a, c: b.example:8443 is no host name
		t.Errorf("rows %d, names %v", f.Rows(), f.Names)
	}
	if got := Read(ev("order", `{"status":"pending","identifiers":[{"type":"dns","value":"a.example"}]}`), time.Time{}).Issued(); got != nil {
		t.Errorf("a pending order issued %v", got)
	}
	if got := Read(ev("auth", `{"status":"valid","identifiers":[{"type":"dns","value":"a.example"}]}`), time.Time{}).Issued(); got != nil {
		t.Errorf("an authorization issued %v", got)
	}
}

func TestParseLine(t *testing.T) {
	line := []byte(`{"msg":"new-order","params":{"x":1,"server":"ca.test"},"time":"2026-11-23 10:00:00","proxy":"p1@amp.test","id":4,"host":"h"}`)
	e, err := ParseLine(line)
	if err != nil || e.Msg != "new-order" || e.ID != 4 || !e.Time.Equal(at) || string(e.Params) != `{"x":1,"server":"ca.test"}` || string(e.Envelope) != string(line) {
		t.Fatalf("%+v %v", e, err)
	}
	for _, bad := range []string{`nope`, `{"msg":"x","params":{},"proxy":"p","id":0}`, `{"msg":"x","params":[],"proxy":"p","id":1}`,
		`{"msg":"","params":{},"proxy":"p","id":1}`, `{"msg":"x","params":{},"proxy":"","id":1}`,
		`{"msg":"x","params":{"identifier":{"type":"dns","value":"a\u0000"}},"proxy":"p","id":1}`} {
		if _, err := ParseLine([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestNotRenewing(t *testing.T) {
	f := NotRenewing(Unrenewed{Severity: finding.Critical, WarnSince: at, LastOrder: at.Add(-60 * 24 * time.Hour), Proxy: "p1@amp.test"})
	if f.Kind != finding.KindACMENotRenewing || f.Severity != finding.Critical ||
		f.Detail != "the certificate is in its warning window since 2026-11-23 10:00:00 and no ACME order for it was seen since (last order 2026-09-24 10:00:00, via p1@amp.test): the renewal is not even being attempted" {
		t.Errorf("%+v", f)
	}
}
