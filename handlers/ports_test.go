// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"strconv"
	"testing"

	"github.com/keychest/keychest-lined/internal/ports"
	"github.com/keychest/keychest-lined/names"
)

// "add" takes only the ports the monitor may watch (KEYCHEST_MONITOR_PORTS,
// the default list when unset); the refusal names the list, writes
// nothing, and is the same whether the add is started or served. Remove,
// cert and check still take any port, for domains added under an older
// list.
func TestAddRefusesUnwatchedPorts(t *testing.T) {
	e := newEnv(t, 100)
	key := e.do(t, "command apikey").Data
	const refusal = "port 6379 is not monitored here; allowed ports: 443,465,636,853,993,995,5061,6443,8443,9443"
	expect(t, e.do(t, "command add domain example.org:6379 apikey "+key), 400, refusal)
	r, started := e.start(t, "command add domain example.org:6379 apikey "+key)
	if started {
		t.Error("an add of a refused port was started")
	}
	expect(t, r, 400, refusal)
	for _, d := range []string{"example.org:22", "example.org:80", "example.org:65535", "*.example.org:5432"} {
		expect(t, e.do(t, "command add domain "+d+" apikey "+key), 400, "is not monitored here")
	}
	for _, d := range []string{"example.org", "example.org:443", "example.org:465", "example.org:636", "example.org:853",
		"example.org:993", "example.org:995", "example.org:5061", "example.org:6443", "example.org:8443", "example.org:9443"} {
		expect(t, e.do(t, "command add domain "+d+" apikey "+key), 200, "")
	}
	if n := e.count(t, `SELECT count(*) FROM domains WHERE port NOT IN (443,465,636,853,993,995,5061,6443,8443,9443)`); n != 0 {
		t.Fatalf("%d domains on refused ports were stored", n)
	}
	expect(t, e.do(t, "command remove domain example.org:6379 apikey "+key), 404, "is not registered") // not a port error
	expect(t, e.do(t, "command cert domain example.org:6379 apikey "+key), 404, "is not registered")
}

// KEYCHEST_MONITOR_PORTS=1-65535 lets every port through (the tests on
// high loopback ports need it); a custom list is quoted as configured.
func TestAddPortsAsConfigured(t *testing.T) {
	e := newEnv(t, 100)
	all, _ := ports.Parse(ports.Everything)
	e.mux.cfg.MonitorPorts = all
	key := e.do(t, "command apikey").Data
	expect(t, e.do(t, "command add domain example.org:6379 apikey "+key), 200, "example.org:6379 added")
	some, _ := ports.Parse("8000-8999, 443")
	e.mux.cfg.MonitorPorts = some
	expect(t, e.do(t, "command add domain example.org:8080 apikey "+key), 200, "example.org:8080 added")
	expect(t, e.do(t, "command add domain example.org:9000 apikey "+key), 400, "port 9000 is not monitored here; allowed ports: 443,8000-8999")
}

// A long list is cut in the refusal, at a comma, so the reply stays short.
func TestPortRefusalIsShort(t *testing.T) {
	list := ""
	for p := 2; p < 400; p += 2 {
		list += "," + strconv.Itoa(p)
	}
	s, err := ports.Parse(list)
	if err != nil {
		t.Fatal(err)
	}
	perr := watchable(names.Domain{Name: "example.org", Port: 1}, s)
	if perr == nil || len(perr.Text) > portListMax+80 || perr.Text[len(perr.Text)-4:] != ",..." {
		t.Fatalf("refusal: %v", perr)
	}
}
