// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// loadRecorded reads the exchanges recorded against Pebble by
// TestACMEClientThroughProxyToPebble -update.
func loadRecorded(t *testing.T) []Exchange {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "pebble.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rs []recorded
	if err := json.Unmarshal(raw, &rs); err != nil {
		t.Fatal(err)
	}
	var xs []Exchange
	for _, r := range rs {
		xs = append(xs, Exchange{Time: time.Unix(1700000000, 0), Client: "127.0.0.1", Server: r.Server, Method: r.Method,
			URL: r.URL, Agent: "amp-test", RequestBody: []byte(r.RequestBody), Status: r.Status, Header: r.Header, Body: []byte(r.Body)})
	}
	return xs
}

func replay(xs []Exchange) []Event {
	tr := NewTracker(1000)
	tr.DefaultEmail = "default@example.org"
	var out []Event
	for _, x := range xs {
		out = append(out, tr.Observe(x)...)
	}
	return out
}

// trace is each event's type and status, in order.
func trace(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, fmt.Sprintf("%s:%v", e.Msg, pm(e)["status"]))
	}
	return out
}

func TestRecordedExchangesFromPebble(t *testing.T) {
	events := replay(loadRecorded(t))
	byMsg := map[string][]Event{}
	for _, ev := range events {
		byMsg[ev.Msg] = append(byMsg[ev.Msg], ev)
		checkSeedFields(t, ev)
	}
	for msg := range seedFields {
		if len(byMsg[msg]) == 0 {
			t.Errorf("no %s", msg)
		}
	}
	checkFailure(t, events)
	cases := []struct {
		msg, param string
		want       string
	}{
		{"new-acct", "contact", `["mailto:ops@example.org"]`},
		{"new-acct", "email", `"ops@example.org"`},
		{"new-acct", "status", `"valid"`},
		{"new-acct", "code", `201`},
		{"new-order", "domains", `[{"type":"ip","value":"127.0.0.1"}]`},
		{"new-order", "code", `201`},
		{"auth", "identifier", `{"type":"ip","value":"127.0.0.1"}`},
		{"auth", "status", `"pending"`},
		{"chall", "type", `"http-01"`},
		{"final", "identifiers", `[{"type":"ip","value":"127.0.0.1"}]`},
		{"revoke-cert", "code", `200`},
		{"key-change", "code", `200`},
		{"directory", "server", `"localhost:` + strings.Split(pm(events[0])["server"].(string), ":")[1] + `"`},
	}
	for _, c := range cases {
		got, _ := json.Marshal(pm(byMsg[c.msg][0])[c.param])
		if string(got) != c.want {
			t.Errorf("first %s: %s = %s, want %s", c.msg, c.param, got, c.want)
		}
	}
	// The account is the path of the new-acct's Location, on every later message.
	acct := pm(byMsg["new-acct"][0])["account"].(string)
	if !strings.HasPrefix(acct, "/") || pm(byMsg["new-order"][0])["account"] != acct || pm(byMsg["auth"][0])["account"] != acct {
		t.Errorf("account %q not carried on", acct)
	}
	// An order reaches valid with its certificate.
	var valid bool
	for _, ev := range byMsg["order"] {
		valid = valid || pm(ev)["status"] == "valid" && pm(ev)["certificate"] != ""
	}
	if !valid {
		t.Error("no valid order with a certificate")
	}
}

// The tracker never assumes a path: the same exchanges with every path
// renamed give the same messages.
func TestClassificationDoesNotDependOnPaths(t *testing.T) {
	xs := loadRecorded(t)
	urlRE := regexp.MustCompile(`https://localhost:\d+(/[A-Za-z0-9_/-]*)`)
	renamed := map[string]string{}
	rename := func(s string) string {
		return urlRE.ReplaceAllStringFunc(s, func(u string) string {
			m := urlRE.FindStringSubmatch(u)
			if _, ok := renamed[m[1]]; !ok {
				renamed[m[1]] = fmt.Sprintf("/acme/v%d/x", len(renamed))
			}
			return strings.TrimSuffix(u, m[1]) + renamed[m[1]]
		})
	}
	var ys []Exchange
	for _, x := range xs {
		y := x
		y.URL, y.Body = rename(x.URL), []byte(rename(string(x.Body)))
		y.Header = http.Header{}
		for k, vs := range x.Header {
			for _, v := range vs {
				y.Header.Add(k, rename(v))
			}
		}
		ys = append(ys, y)
	}
	if len(renamed) < 10 {
		t.Fatalf("only %d paths renamed", len(renamed))
	}
	a, b := trace(replay(xs)), trace(replay(ys))
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Errorf("renamed paths change the messages:\n%v\n%v", a, b)
	}
}

// A proxy restarted in the middle of a client's run has not seen the
// directory: orders, authorizations and challenges are still recognised by
// their shape.
func TestClassificationWithoutTheDirectory(t *testing.T) {
	xs := loadRecorded(t)
	got := strings.Join(trace(replay(xs[4:])), " ")
	for _, want := range []string{"auth:pending", "chall:", "order:valid", "auth:invalid"} {
		if !strings.Contains(got, want) {
			t.Errorf("without the directory: no %s in %s", want, got)
		}
	}
}

func TestProblemDocuments(t *testing.T) {
	tr := NewTracker(10)
	dir := `{"newNonce":"https://ca.test/n","newAccount":"https://ca.test/a","newOrder":"https://ca.test/o"}`
	tr.Observe(Exchange{Method: "GET", URL: "https://ca.test/d", Status: 200, Header: jsonHeader("application/json"), Body: []byte(dir)})
	prob := `{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"Error creating new order","status":400,
		"subproblems":[{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many","identifier":{"type":"dns","value":"a.example"}}]}`
	evs := tr.Observe(Exchange{Method: "POST", URL: "https://ca.test/o", Status: 400, Header: jsonHeader("application/problem+json"), Body: []byte(prob)})
	if len(evs) != 1 || evs[0].Msg != "new-order" {
		t.Fatalf("events: %+v", evs)
	}
	got, _ := json.Marshal(pm(evs[0])["problem"])
	want := `{"detail":"Error creating new order","subproblems":[{"detail":"too many","identifier":{"type":"dns","value":"a.example"},"type":"urn:ietf:params:acme:error:rateLimited"}],"type":"urn:ietf:params:acme:error:rejectedIdentifier"}`
	if string(got) != want {
		t.Errorf("problem:\n%s\nwant\n%s", got, want)
	}
}

// pm is an event's params as the journal writes them, read back as JSON.
func pm(e Event) map[string]any {
	raw, _ := json.Marshal(e.Params)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

func jsonHeader(ct string) http.Header { return http.Header{"Content-Type": {ct}} }

func TestDecodeJWSRefuses(t *testing.T) {
	for _, body := range []string{``, `garbage`, `{}`, `{"protected":"e30","payload":""}`,
		`{"protected":"!!","payload":"","signature":"AA"}`, `{"protected":"e30","payload":"bm90IGpzb24","signature":"AA"}`} {
		if _, err := DecodeJWS([]byte(body)); err == nil {
			t.Errorf("%q accepted", body)
		}
	}
	if _, err := DecodeJWS([]byte(`{"protected":"e30","payload":"","signature":"AA"}`)); err != nil {
		t.Errorf("POST-as-GET refused: %v", err)
	}
}

// Whatever the server answers, the tracker neither panics nor makes up a
// type the seed does not have.
func FuzzTrackerObserve(f *testing.F) {
	raw, _ := os.ReadFile(filepath.Join("testdata", "pebble.json"))
	var rs []recorded
	json.Unmarshal(raw, &rs)
	for _, r := range rs {
		f.Add(r.Method, r.URL, r.Body, r.Header.Get("Content-Type"))
	}
	f.Fuzz(func(t *testing.T, method, u, body, contentType string) {
		tr := NewTracker(4)
		for range 2 {
			for _, ev := range tr.Observe(Exchange{Method: method, URL: u, Status: 200, Header: jsonHeader(contentType), Body: []byte(body)}) {
				if _, ok := seedFields[ev.Msg]; !ok {
					t.Fatalf("type %q", ev.Msg)
				}
				if _, err := json.Marshal(ev.Params); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
