// SPDX-License-Identifier: Apache-2.0

package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/keychest/keychest-lined/internal/ports"
)

// KEYCHEST_MONITOR_PORTS defaults to ports.Default and refuses a list
// that does not parse.
func TestMonitorPortsSetting(t *testing.T) {
	var c Config
	if err := envconfig.Process("KEYCHEST_TEST_UNSET", &c); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.MonitorPorts, ports.DefaultSet()) {
		t.Fatalf("default %v, want %v", c.MonitorPorts, ports.DefaultSet())
	}
	t.Setenv("KEYCHEST_DATABASE_URL", "postgres://example")
	for _, bad := range []string{"20-10", "0", "443,https", ""} {
		t.Setenv("KEYCHEST_MONITOR_PORTS", bad)
		if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), "MONITOR_PORTS") {
			t.Errorf("KEYCHEST_MONITOR_PORTS=%q: %v", bad, err)
		}
	}
	t.Setenv("KEYCHEST_MONITOR_PORTS", "1-65535")
	if c, err := loadConfig(); err != nil || !c.MonitorPorts.Allows(6379) {
		t.Fatalf("1-65535: %v", err)
	}
}

// The server with its defaults refuses "add" of a port off the list, over
// the wire, with the list in the reply.
func TestAddOfAnotherPortIsRefused(t *testing.T) {
	a := startApp(t, nil)
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command add domain example.org:6379 apikey "+key,
		"status error 400 port 6379 is not monitored here; allowed ports: 443,465,636,853,993,995,5061,6443,8443,9443")
	c.must("command add domain example.org:8443 apikey "+key, "status ok 200 domain example.org:8443 added")
}
