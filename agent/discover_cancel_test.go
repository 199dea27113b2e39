// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// holdingServer accepts one connection on loopback and answers nothing
// until the test ends; asked is closed once the client sent its first
// request (it is past its dial, waiting for the answer).
func holdingServer(t *testing.T) (addr string, asked <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc, end := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		close(end)
	})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			close(acc)
		}
		<-end
		c.Close()
	}()
	return ln.Addr().String(), acc
}

// cutWhenHeld runs read against a server that answers nothing, cancels
// its context once it asked, and fails unless read returns (well before
// its own timeout of a minute).
func cutWhenHeld(t *testing.T, read func(ctx context.Context, addr string) error) {
	t.Helper()
	addr, asked := holdingServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- read(ctx, addr) }()
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("no request")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cut read gave no error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the read did not end when its context did")
	}
}

// Ending the context cuts a zone transfer and an LDAP read at once,
// whatever their timeout.
func TestDiscoveryReadsEndWithContext(t *testing.T) {
	t.Run("axfr", func(t *testing.T) {
		cutWhenHeld(t, func(ctx context.Context, addr string) error {
			_, err := TransferZone(ctx, ZoneSource{Zone: "corp.example.", Server: addr}, t.TempDir(), os.Getuid(), time.Minute)
			return err
		})
	})
	for _, starttls := range []bool{false, true} {
		t.Run(fmt.Sprintf("ldap, starttls %v", starttls), func(t *testing.T) {
			cutWhenHeld(t, func(ctx context.Context, addr string) error {
				src := LDAPSource{URL: "ldap://" + addr, Base: "dc=corp,dc=example", StartTLS: starttls}
				_, _, err := ReadLDAP(ctx, src, t.TempDir(), os.Getuid(), time.Minute)
				return err
			})
		})
	}
}
