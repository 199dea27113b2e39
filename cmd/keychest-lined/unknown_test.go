// SPDX-License-Identifier: Apache-2.0

package main

import (
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// A target that accepts TCP but never completes a TLS handshake has never
// shown a certificate: after its first probe (the handshake times out),
// "cert", "certs" and the account page read unknown with the class
// timeout. No answer along the way may read ok, which the monitor used to
// report until the failure was confirmed minutes later.
func TestSilentEndpointReadsUnknownNeverOK(t *testing.T) {
	e := newEndpoint(t, "shop.app.test", 60*24*time.Hour) // its DNS server and CA
	port := silentListener(t, "127.0.0.3:0")
	e.dns.Set("silent.app.test", netip.MustParseAddr("127.0.0.3"))
	a := startApp(t, e.watch)
	c := a.dial(t)
	c.c.SetDeadline(time.Now().Add(60 * time.Second)) // the handshake's own timeout is 10 s
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email silent@example.com", "status ok 200")
	if err := a.db.SetAccount(t.Context(), "silent@example.com", "confirm"); err != nil {
		t.Fatal(err)
	}
	target := "silent.app.test:" + strconv.Itoa(port)
	c.must("command add domain "+target+" apikey "+key, "status ok 200 domain "+target+" added")
	var data string
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		data = c.must("command cert domain "+target+" apikey "+key, "status ok 200")
		if strings.HasPrefix(data, "state=ok") {
			t.Fatalf("a target that never served a certificate reads ok: %q", data)
		}
		if !strings.Contains(data, " checked=-") || time.Now().After(deadline) {
			break
		}
	}
	want := regexp.MustCompile(`^state=unknown expires=- days=- issuer=- addresses=1 checked=\S+Z finding=- class=timeout$`)
	if !want.MatchString(data) {
		t.Fatalf("cert after the first probe: %q", data)
	}

	code, out, _ := cli(t, a.cfg.DatabaseURL, "certs")
	if code != 0 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(target)+`\s+unknown\s+timeout\s+-\s+-\s+-\s+1\s`).MatchString(out) {
		t.Fatalf("certs: %d\n%s", code, out)
	}
	const raw = "silent-account-page-token"
	hash := store.HashToken(raw)
	if _, err := connect(t, a.cfg.DatabaseURL).Exec(t.Context(), `INSERT INTO account_links (hash, account_id)
		SELECT $1, id FROM accounts WHERE email = 'silent@example.com'`, hash[:]); err != nil {
		t.Fatal(err)
	}
	code, page := get(t, a.webURL+"/account/"+raw)
	if code != 200 || !strings.Contains(page, `data-domain="`+target+`" data-state="unknown"`) ||
		!strings.Contains(page, "No certificate seen yet: the last check failed (timeout)") {
		t.Fatalf("account page: %d\n%s", code, page)
	}
}

// silentListener accepts TCP on addr and never answers: a TLS handshake
// with it times out. It returns the port.
func silentListener(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
