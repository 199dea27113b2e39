// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/internal/smtptest"
)

// What an owner sees, over real SMTP: a certificate with 20 days left of
// 90 gives exactly one warning mail with the account link and a
// List-Unsubscribe header; the account page shows the domain as a
// warning; a renewed certificate and a check give exactly one "resolved"
// mail; unsubscribing (GET shows, POST acts) stops further alerts.
func TestAlertMailAccountPageUnsubscribe(t *testing.T) {
	e := newEndpoint(t, "shop.alert.test", 20*24*time.Hour)
	srv := e.srv
	mail := smtptest.Start(t)
	a := startApp(t, func(c *Config) {
		withSMTP(mail)(c)
		e.watch(c)
		c.AlertBatch, c.MonitorCheckEvery = 50*time.Millisecond, 10*time.Millisecond
	})
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email shop@example.com", "status ok 200")
	post(t, link(t, mail.Wait(t, 1, 10*time.Second)[0].Body(), "confirm"))
	target := "shop.alert.test:" + strconv.Itoa(srv.Port())
	c.must("command add domain "+target+" apikey "+key, "status ok 200 domain "+target+" added")

	alert := mail.Wait(t, 2, 15*time.Second)[1]
	if !strings.HasPrefix(alert.Header("Subject"), "KeyChest: 1 problem") || !strings.Contains(alert.Body(), "WARNING  "+target+"  expiry") ||
		!strings.Contains(alert.Body(), "certbot renew --dry-run") || !strings.HasPrefix(alert.Header("Message-Id"), "<outbox-") {
		t.Fatalf("alert mail: %q\n%s", alert.Header("Subject"), alert.Body())
	}
	unsubscribe := strings.Trim(alert.Header("List-Unsubscribe"), "<>")
	if unsubscribe != link(t, alert.Body(), "alerts_off") {
		t.Fatalf("List-Unsubscribe %q is not the body's link", unsubscribe)
	}
	code, page := get(t, link(t, alert.Body(), "account"))
	if code != 200 || !strings.Contains(page, `data-domain="`+target+`" data-state="warning"`) || !strings.Contains(page, "19 days left") {
		t.Fatalf("account page: %d\n%s", code, page)
	}
	if data := c.must("command cert domain "+target+" apikey "+key, "status ok 200"); !strings.HasPrefix(data, "state=warning ") {
		t.Fatalf("the page and cert disagree: %q", data)
	}

	srv.Swap(e.issue(t, 90*24*time.Hour))
	c.must("command check domain "+target+" apikey "+key, "status ok 200 check queued")
	resolved := mail.Wait(t, 3, 15*time.Second)[2]
	if !strings.Contains(resolved.Header("Subject"), "resolved") || !strings.Contains(resolved.Body(), target+"  expiry") {
		t.Fatalf("resolved mail: %q\n%s", resolved.Header("Subject"), resolved.Body())
	}

	if code, page := get(t, unsubscribe); code != 200 || !strings.Contains(page, "Stop alerts") {
		t.Fatalf("unsubscribe GET: %d\n%s", code, page)
	}
	if n := count(t, a, `SELECT count(*) FROM accounts WHERE alerts_off_at IS NOT NULL`); n != 0 {
		t.Fatal("a GET turned alerts off")
	}
	if code, _ := post(t, unsubscribe); code != 200 || count(t, a, `SELECT count(*) FROM accounts WHERE alerts_off_at IS NOT NULL AND confirmed_at IS NOT NULL`) != 1 {
		t.Fatalf("unsubscribe POST: %d", code)
	}
	srv.Swap(e.issue(t, 2*24*time.Hour))
	c.must("command check domain "+target+" apikey "+key, "status ok 200 check queued")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if data := c.must("command cert domain "+target+" apikey "+key, "status ok 200"); strings.HasPrefix(data, "state=critical") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expiring certificate was not seen")
		}
	}
	if n := count(t, a, `SELECT count(*) FROM outbox WHERE kind = 'alert'`); n != 2 {
		t.Fatalf("%d alert mails queued, want the 2 sent before unsubscribing", n)
	}

	code, out, _ := cli(t, a.cfg.DatabaseURL, "alerts", "--email", "shop@example.com")
	if code != 0 || strings.Count(out, " sent ") != 2 || !strings.Contains(out, "expiry") {
		t.Fatalf("alerts: %d\n%s", code, out)
	}
	code, out, _ = cli(t, a.cfg.DatabaseURL, "digest", "--email", "shop@example.com", "--dry-run")
	if code != 0 || !strings.Contains(out, "Subject: KeyChest weekly: 1 certificate watched, 1 with a problem") ||
		!strings.Contains(out, target) || !strings.Contains(out, "renewed") {
		t.Fatalf("digest: %d\n%s", code, out)
	}
	if code, out, _ = cli(t, a.cfg.DatabaseURL, "rotate-links", "--email", "shop@example.com"); code != 0 ||
		!strings.Contains(out, "revoked 2 account links") {
		t.Fatalf("rotate-links: %d %s", code, out)
	}
	if code, _ := get(t, link(t, alert.Body(), "account")); code != 404 {
		t.Fatalf("a rotated account link still works: %d", code)
	}
}

// count runs a counting query on the app's database.
func count(t *testing.T, a *testApp, sql string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), a.cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var n int
	if err := conn.QueryRow(t.Context(), sql).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
