// SPDX-License-Identifier: Apache-2.0

package main

import (
	"net"
	"testing"
	"time"
)

// pingAt sends "command ping" to addr and returns the reply.
func pingAt(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("command ping"))
	buf := make([]byte, 1000)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// TestListenList: every address of KEYCHEST_LISTEN's list is served.
func TestListenList(t *testing.T) {
	a := startApp(t, func(c *Config) { c.Listen = "127.0.0.1:0, [::1]:0" })
	addrs := listenAll(a.lines)
	if len(addrs) != 2 {
		t.Fatalf("listening on %q", addrs)
	}
	for _, addr := range addrs {
		if got := pingAt(t, addr); got != "status ok 200 pong\n" {
			t.Errorf("%s: %q", addr, got)
		}
	}
}

// TestListenDualStack: an empty host, as in the default ":10023", is one
// listener that IPv4 and IPv6 clients both reach.
func TestListenDualStack(t *testing.T) {
	a := startApp(t, func(c *Config) { c.Listen = ":0" })
	_, port, _ := net.SplitHostPort(a.lineAddr)
	for _, host := range []string{"127.0.0.1", "::1"} {
		if got := pingAt(t, net.JoinHostPort(host, port)); got != "status ok 200 pong\n" {
			t.Errorf("%s: %q", host, got)
		}
	}
}

func TestValidListen(t *testing.T) {
	for list, want := range map[string]bool{
		":10023": true, "0.0.0.0:10023,[::]:10023": true, "127.0.0.1:1, [::1]:2": true,
		"": false, "127.0.0.1": false, ":10023,": false, "[::1]:": false,
	} {
		if validListen(list) != want {
			t.Errorf("validListen(%q) = %v", list, !want)
		}
	}
}
