// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/slapdtest"
)

// reopen closes w's agent and opens it again on the same DIR (its
// identity, claimed) with discover.conf conf and files (mode 0600).
func (w *siteWorld) reopen(t *testing.T, conf string, files map[string][]byte) {
	t.Helper()
	cfg := w.agent.Config()
	w.agent.Close()
	files[agent.DiscoverFile] = []byte(conf)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(cfg.Dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if w.agent, err = agent.Open(cfg); err != nil {
		t.Fatal(err)
	}
}

// agentLog is the agent's log so far.
func (w *siteWorld) agentLog(t *testing.T) string {
	t.Helper()
	raw, _ := os.ReadFile(filepath.Join(w.agent.Config().Dir, agent.LogFile))
	return string(raw)
}

// logged says whether log has an entry of code.
func logged(log, code string) bool { return strings.Contains(log, `"code":"`+code+`"`) }

// waitFor polls cond until it holds, failing after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
	}
}

// End to end: Debian's slapd on loopback (StartTLS, its CA in the
// agent's "ca" file) holds certificates in userCertificate;binary; the
// claimed agent reads them and posts them; the service's monitor judges
// them with its thresholds: the one that expires in 5 days gives a
// critical expiry finding labelled with its DN, and the alert mail goes
// to the account that claimed the agent, and to no other account.
func TestLDAPStoreExpiryFindingEndToEnd(t *testing.T) {
	w := newSiteWorld(t, 60*24*time.Hour, nil)
	other := w.app.dial(t)
	otherKey := other.must("command apikey", "status ok 200")
	other.must("command claim apikey "+otherKey+" email other@example.com", "status ok 200")
	post(t, link(t, w.mail.Wait(t, 2, 10*time.Second)[1].Body(), "confirm"))

	urls := slapdtest.StartTLS(t, slapdtest.People(t, 3))
	w.reopen(t, "ldap "+urls.Plain+" base "+slapdtest.Base+" bind "+slapdtest.Agent+" ldap.pw starttls ca ldap-ca.pem\n",
		map[string][]byte{"ldap.pw": []byte(slapdtest.Password + "\n"), "ldap-ca.pem": urls.CA})
	if err := w.agent.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if log := w.agentLog(t); !logged(log, logcode.AgentLDAPRead) || !strings.Contains(log, `"certificates":4`) {
		t.Fatalf("the agent did not read and post the store:\n%s", log)
	}
	const dn = "cn=user0000,ou=people," + slapdtest.Base
	alert := w.mail.Wait(t, 3, 15*time.Second)[2]
	if strings.Join(alert.To, ",") != "owner@example.com" || !strings.HasPrefix(alert.Header("Subject"), "KeyChest: 1 problem") ||
		!strings.Contains(alert.Body(), "CRITICAL  LDAP "+dn+"  expiry") {
		t.Fatalf("alert mail to %v: %q\n%s", alert.To, alert.Header("Subject"), alert.Body())
	}
	if n := count(t, w.app, `SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE t.discovered_cert IS NOT NULL AND f.kind = 'expiry' AND f.closed_at IS NULL`); n != 1 {
		t.Fatalf("open expiry findings on LDAP certificates: %d, want 1", n)
	}
	if n := count(t, w.app, `SELECT count(*) FROM mon_findings f JOIN mon_targets t ON t.id = f.target_id
		WHERE t.name = '`+dn+`' AND f.severity = 'critical' AND f.mailed_severity = 'critical'`); n != 1 {
		t.Fatalf("critical, mailed findings for %s: %d", dn, n)
	}
	if n := count(t, w.app, `SELECT count(*) FROM mon_observations`); n != 0 {
		t.Fatalf("%d observations: something was probed", n)
	}
	if err := w.agent.Once(context.Background()); err != nil { // within --discover-every: nothing read again
		t.Fatal(err)
	}
	if n := strings.Count(w.agentLog(t), `"code":"`+logcode.AgentLDAPRead+`"`); n != 1 {
		t.Fatalf("the store was read %d times within --discover-every, want once", n)
	}
	for _, m := range w.mail.Messages() {
		if strings.Contains(strings.Join(m.To, ","), "other@") && !strings.Contains(m.Body(), "confirm") {
			t.Fatalf("a mail to the other account: %q\n%s", m.Header("Subject"), m.Body())
		}
	}
}

// holdingLDAP is an "LDAP server" on loopback that accepts connections
// and answers nothing until released: a discovery pass reading it is
// held open for as long as the test wants.
func holdingLDAP(t *testing.T) (addr string, accepted <-chan struct{}, release chan<- struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	acc, rel := make(chan struct{}), make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		close(acc)
		<-rel
		c.Close()
	}()
	return ln.Addr().String(), acc, rel
}

// "run" takes and relays jobs while a discovery pass is held open (an
// LDAP server that answers nothing): discovery runs beside the job loop.
func TestRunRelaysJobsDuringDiscovery(t *testing.T) {
	w := newSiteWorld(t, 60*24*time.Hour, nil)
	addr, accepted, release := holdingLDAP(t)
	w.reopen(t, "ldap ldap://"+addr+" base "+slapdtest.Base+"\n", map[string][]byte{})
	target := "ldap.corp.example:" + strconv.Itoa(w.target.Port())
	w.c.must("command add domain "+target+" apikey "+w.key+" site office", "status ok 200")

	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.agent.Run(ctx, nil) }()
	defer func() {
		cancel()
		<-ran
	}()
	select {
	case <-accepted:
	case <-time.After(15 * time.Second):
		t.Fatal("the discovery pass did not connect")
	}
	waitFor(t, 20*time.Second, "the job was not relayed while the discovery pass was held", func() bool {
		return count(t, w.app, `SELECT count(*) FROM mon_targets WHERE site_target IS NOT NULL AND last_checked_at IS NOT NULL`) == 1
	})
	if data := w.c.must("command cert domain "+target+" apikey "+w.key, "status ok 200"); !strings.HasPrefix(data, "state=ok ") {
		t.Fatalf("cert: %s", data)
	}
	if log := w.agentLog(t); logged(log, logcode.AgentLDAPFailed) || logged(log, logcode.AgentLDAPRead) {
		t.Fatalf("the discovery pass ended before the job ran:\n%s", log)
	}
	close(release)
	waitFor(t, 20*time.Second, "the released pass did not end (its read failed)", func() bool {
		return logged(w.agentLog(t), logcode.AgentLDAPFailed)
	})
}

// runHeld starts "run" with discover.conf's one source an LDAP server
// that answers nothing, and waits until the discovery pass connected.
func runHeld(t *testing.T, w *siteWorld) (cancel context.CancelFunc, ran <-chan error) {
	t.Helper()
	addr, accepted, release := holdingLDAP(t)
	t.Cleanup(func() { close(release) })
	w.reopen(t, "ldap ldap://"+addr+" base "+slapdtest.Base+"\n", map[string][]byte{})
	ctx, cancel := context.WithCancel(context.Background())
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		done <- w.agent.Run(ctx, nil)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	select {
	case <-accepted:
	case <-time.After(15 * time.Second):
		t.Fatal("the discovery pass did not connect")
	}
	return cancel, done
}

// stopped waits for run to return; the deadline is well below the 30 s
// that bound one read, and the unit's TimeoutStopSec.
func stopped(t *testing.T, ran <-chan error) error {
	t.Helper()
	select {
	case err := <-ran:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return: it waits out the discovery pass")
		return nil
	}
}

// Stopping "run" while a discovery pass is held open (an LDAP server that
// answers nothing) cuts the pass: run returns without waiting for the
// read's timeout, and logs no failed read nor failed post.
func TestRunStopsDuringDiscovery(t *testing.T) {
	w := newSiteWorld(t, 60*24*time.Hour, nil)
	cancel, ran := runHeld(t, w)
	cancel()
	if err := stopped(t, ran); err != nil {
		t.Fatalf("run: %v", err)
	}
	if log := w.agentLog(t); logged(log, logcode.AgentLDAPFailed) || strings.Contains(log, "posting discovered endpoints failed") {
		t.Fatalf("a stop logged as a failure:\n%s", log)
	}
}

// When the server refuses the agent's key while a discovery pass is held
// open, "run" returns ErrRejected without waiting for the pass.
func TestRunRejectedDuringDiscovery(t *testing.T) {
	w := newSiteWorld(t, 60*24*time.Hour, nil)
	_, ran := runHeld(t, w)
	if n := count(t, w.app, `WITH u AS (UPDATE agents SET key_hash = sha256(key_hash) RETURNING 1) SELECT count(*) FROM u`); n != 1 {
		t.Fatalf("%d agents' keys changed", n)
	}
	if err := stopped(t, ran); !errors.Is(err, agent.ErrRejected) {
		t.Fatalf("run: %v, want ErrRejected", err)
	}
}
