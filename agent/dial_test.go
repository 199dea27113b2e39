// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// listen listens on addr and counts the connections it accepts.
func listen(t *testing.T, addr string) (net.Listener, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l, &n
}

// The guard checks the address actually dialled, at dial time: a listener
// off the list accepts no connection, one on it does.
func TestGuardDialsOnlyWhatAllowPermits(t *testing.T) {
	on, onCount := listen(t, "127.0.0.50:0")
	off, offCount := listen(t, "127.0.0.51:0")
	port := on.Addr().(*net.TCPAddr).Port
	a, err := ParseAllow("allow 127.0.0.50/32 " + itoa(port) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	var refused []*RefusedError
	g := &Guard{Allow: a, Refused: func(e *RefusedError) { refused = append(refused, e) }}
	d := g.Dialer(2*time.Second, "")
	c, err := g.DialJob(context.Background(), d, "127.0.0.50", port)
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	c.Close()
	offPort := off.Addr().(*net.TCPAddr).Port
	for _, target := range []struct {
		host string
		port int
	}{{"127.0.0.51", offPort}, {"127.0.0.1", port}} {
		_, err := g.DialJob(context.Background(), d, target.host, target.port)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s:%d: %v, want ErrRefused", target.host, target.port, err)
		}
	}
	// A plain dial to the right address on a port off the list, too.
	if _, err := d.Dial("tcp", off.Addr().String()); !errors.Is(err, ErrRefused) {
		t.Errorf("direct dial off the list: %v", err)
	}
	// Let the accept loops see anything that got through.
	c2, err := net.Dial("tcp", on.Addr().String())
	if err == nil {
		c2.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for onCount.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if offCount.Load() != 0 || onCount.Load() != 2 {
		t.Errorf("accepted: on %d (want 2), off %d (want 0)", onCount.Load(), offCount.Load())
	}
	if len(refused) != 3 || refused[0].Addr.String() != off.Addr().String() {
		t.Errorf("refusals reported: %v", refused)
	}
}

// A name pattern is matched against the job's name, and the address it
// resolved to against the CIDR: localhost resolves (from /etc/hosts) to
// loopback, which the rule allows only for names under corp.example.
func TestGuardNamePattern(t *testing.T) {
	on, count := listen(t, "127.0.0.1:0")
	port := on.Addr().(*net.TCPAddr).Port
	a, _ := ParseAllow("allow 127.0.0.0/8 " + itoa(port) + " *.corp.example\n")
	g := &Guard{Allow: a}
	d := g.Dialer(2*time.Second, "")
	if _, err := g.DialJob(context.Background(), d, "127.0.0.1", port); !errors.Is(err, ErrRefused) {
		t.Errorf("an address as the name matched *.corp.example: %v", err)
	}
	ctx := WithJobName(context.Background(), "ldap.corp.example")
	c, err := d.DialContext(ctx, "tcp", on.Addr().String())
	if err != nil {
		t.Fatalf("named job: %v", err)
	}
	c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for count.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if count.Load() != 1 {
		t.Errorf("accepted %d, want 1", count.Load())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
