// SPDX-License-Identifier: Apache-2.0

// Package nsdtest runs Debian's NSD on loopback for the tests of zone
// transfers (scripts/deps.sh test installs it).
package nsdtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Secret is the TSIG secret (hmac-sha256) of the key agent-key.
const Secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM0NTY3ODk="

// Zone is corp.example with 20 names: n01-n10 in 10.20.0.0/16 (the
// allow-list's), n11-n20 in 192.168.0.0/16 (outside it), mixed.corp has
// one of each, and an SRV record points at ldap.corp on port 636.
func Zone(extra string) string {
	var b strings.Builder
	b.WriteString("$ORIGIN corp.example.\n$TTL 300\n")
	b.WriteString("@ IN SOA ns.corp.example. admin.corp.example. 1 3600 600 86400 300\n@ IN NS ns\nns IN A 10.20.0.53\n")
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&b, "n%02d IN A 10.20.1.%d\n", i, i)
	}
	for i := 11; i <= 20; i++ {
		fmt.Fprintf(&b, "n%02d IN A 192.168.1.%d\n", i, i)
	}
	b.WriteString("mixed IN A 10.20.2.1\nmixed IN A 192.168.2.1\nv6 IN AAAA fd00::1\n")
	b.WriteString("ldap IN A 10.20.3.1\n_ldap._tcp IN SRV 0 0 636 ldap.corp.example.\n* IN A 10.20.9.9\n")
	b.WriteString(extra)
	return b.String()
}

// FreePort is a loopback port free for both UDP and TCP right now.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free loopback port")
	return 0
}

// Start runs Debian's NSD on 127.0.0.1 serving zone as corp.example,
// transfers allowed to 127.0.0.1 with the TSIG key agent-key. It returns
// the server's address. NSD is required: make test installs it
// (scripts/deps.sh test).
func Start(t testing.TB, zone string) string {
	t.Helper()
	bin, err := exec.LookPath("nsd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nsd"); serr != nil {
			t.Fatal("nsd is missing: run scripts/deps.sh test (as root) to install Debian's nsd")
		}
		bin = "/usr/sbin/nsd"
	}
	dir := t.TempDir()
	port := FreePort(t)
	os.WriteFile(filepath.Join(dir, "corp.example.zone"), []byte(zone), 0o644)
	conf := fmt.Sprintf(`server:
	ip-address: 127.0.0.1@%[2]d
	do-ip6: no
	username: ""
	chroot: ""
	zonesdir: "%[1]s"
	database: ""
	pidfile: "%[1]s/nsd.pid"
	xfrdfile: "%[1]s/xfrd.state"
	xfrdir: "%[1]s"
	zonelistfile: "%[1]s/zone.list"
	logfile: "%[1]s/nsd.log"
	server-count: 1
	verbosity: 1
remote-control:
	control-enable: no
key:
	name: "agent-key"
	algorithm: hmac-sha256
	secret: "%[3]s"
zone:
	name: "corp.example"
	zonefile: "corp.example.zone"
	provide-xfr: 127.0.0.1 agent-key
`, dir, port, Secret)
	cf := filepath.Join(dir, "nsd.conf")
	os.WriteFile(cf, []byte(conf), 0o600)
	cmd := exec.Command(bin, "-d", "-c", cf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Ready once it answers the zone's SOA over TCP.
	c := &dns.Client{Net: "tcp", Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("corp.example.", dns.TypeSOA)
	for deadline := time.Now().Add(15 * time.Second); ; {
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
			t.Fatalf("nsd did not answer on %s: %s\n%s", addr, out.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
