// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/smtptest"
	"github.com/keychest/keychest-lined/mailer"
	"github.com/keychest/keychest-lined/store"
)

// withSMTP points the server at a test SMTP receiver.
func withSMTP(mail *smtptest.Server) func(*Config) {
	return func(c *Config) {
		c.SMTPURL, c.MailFrom = "smtp://"+mail.Addr, "keychest@test.example"
		c.MailRetryMin, c.MailRetryMax = 50*time.Millisecond, 200*time.Millisecond
	}
}

// link returns the link for action in a mail body.
func link(t *testing.T, body, action string) string {
	t.Helper()
	for _, l := range mailer.Links(body) {
		if strings.Contains(l, "/"+action+"/") {
			return l
		}
	}
	t.Fatalf("no %s link in:\n%s", action, body)
	return ""
}

// The whole loop: claim over TCP, the mail over real SMTP, the link: a GET
// shows a page and changes nothing, the POST confirms, the domains become
// active.
func TestClaimMailConfirm(t *testing.T) {
	mail := smtptest.Start(t)
	a := startApp(t, withSMTP(mail))
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email Owner@Example.com", "status ok 200 claimed for")
	c.must("command add domain watched.example apikey "+key, "status ok 200 domain watched.example:443 added (pending")

	m := mail.Wait(t, 1, 10*time.Second)[0]
	if m.To[0] != "owner@example.com" || m.Header("Subject") != "Confirm your KeyChest account" {
		t.Fatalf("mail to %v, subject %q", m.To, m.Header("Subject"))
	}
	for _, want := range []string{key[:8] + "...", "From:    127.0.0.1", " UTC", "owner@example.com, holding 1 key"} {
		if !strings.Contains(m.Body(), want) {
			t.Errorf("mail body lacks %q:\n%s", want, m.Body())
		}
	}
	confirm := link(t, m.Body(), "confirm")
	if !strings.HasPrefix(confirm, a.webURL+"/confirm/") {
		t.Fatalf("link %q is not under %s", confirm, a.webURL)
	}

	code, page := get(t, confirm)
	if code != 200 || !strings.Contains(page, `<form method="post">`) || !strings.Contains(page, "Confirm account") {
		t.Fatalf("GET: %d\n%s", code, page)
	}
	if data, _ := c.do("command status apikey " + key); !strings.Contains(data, "confirmed=no") {
		t.Fatalf("a GET changed the account: %s", data)
	}
	if code, page = post(t, confirm); code != 200 || !strings.Contains(page, "owner@example.com is confirmed") {
		t.Fatalf("POST: %d\n%s", code, page)
	}
	if data, _ := c.do("command status apikey " + key); !strings.Contains(data, "confirmed=yes") {
		t.Fatalf("status after confirming: %s", data)
	}
	c.must("command add domain watched.example apikey "+key, "status ok 200 domain watched.example:443 already registered")
	if _, status := c.do("command add domain second.example apikey " + key); strings.Contains(status, "pending") {
		t.Fatalf("domain still pending: %s", status)
	}
	if code, _ = post(t, confirm); code != http.StatusGone {
		t.Fatalf("second POST: %d, want 410", code)
	}
	checkCLI(t, a)
	checkMetrics(t, a)
}

// SMTP down while claiming, then up: the mail arrives, exactly once.
func TestMailWaitsForSMTP(t *testing.T) {
	mail := smtptest.Start(t)
	mail.Stop()
	a := startApp(t, withSMTP(mail))
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email patient@example.com", "status ok 200")
	for attempts := 0; attempts < 2; attempts = a.outbox(t).attempts {
		time.Sleep(20 * time.Millisecond) // the sender retries on its own schedule
	}
	mail.Restart(t)
	mail.Wait(t, 1, 10*time.Second)
	for !a.outbox(t).sent {
		time.Sleep(20 * time.Millisecond)
	}
	// Once the row says sent, the sender never picks it again; any second
	// delivery would have come before.
	if n := len(mail.Messages()); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
}

type outboxRow struct {
	attempts int
	sent     bool
}

func (a *testApp) outbox(t *testing.T) outboxRow {
	conn, err := pgx.Connect(context.Background(), a.cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var r outboxRow
	if err := conn.QueryRow(context.Background(), `SELECT attempts, sent_at IS NOT NULL FROM outbox`).Scan(&r.attempts, &r.sent); err != nil {
		t.Fatal(err)
	}
	return r
}

// The block link: the account's keys are refused, and so are new claims.
func TestBlockLink(t *testing.T) {
	mail := smtptest.Start(t)
	a := startApp(t, withSMTP(mail))
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email victim@example.com", "status ok 200")
	block := link(t, mail.Wait(t, 1, 10*time.Second)[0].Body(), "block")
	if code, page := get(t, block); code != 200 || !strings.Contains(page, "Block account") {
		t.Fatalf("GET: %d %s", code, page)
	}
	c.must("command add domain before.example apikey "+key, "status ok 200") // the GET changed nothing
	if code, _ := post(t, block); code != 200 {
		t.Fatalf("POST: %d", code)
	}
	c.must("command add domain after.example apikey "+key, "status error 403 account blocked")
	other := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+other+" email victim@example.com", "status error 403 account blocked")
}

// A new key for a confirmed account waits for the owner: the claim's
// reply is the one a new account gets, its domains stay pending, and the
// mail carries an approve and a revoke link. The approve link's GET
// changes nothing, its POST makes the key's domains active; the revoke
// link of another such key refuses it.
func TestNewKeyMailApproveRevoke(t *testing.T) {
	mail := smtptest.Start(t)
	a := startApp(t, withSMTP(mail))
	c := a.dial(t)
	first := c.must("command apikey", "status ok 200")
	reply := c.must("command claim apikey "+first+" email keeper@example.com", "status ok 200")
	_, newAccount := c.do("command claim apikey Newcomer-Key-0123456789 email newcomer@example.com")
	post(t, link(t, about(t, mail.Wait(t, 2, 10*time.Second), first).Body(), "confirm"))
	c.exactly("command add domain mine.example apikey "+first, "status ok 200 domain mine.example:443 added")

	second := c.must("command apikey", "status ok 200")
	_, claimed := c.do("command claim apikey " + second + " email keeper@example.com")
	if want := strings.ReplaceAll(newAccount, "newcomer@", "keeper@"); claimed != want || reply != "" {
		t.Fatalf("claim onto a confirmed account: %q, onto a new one: %q", claimed, newAccount)
	}
	c.must("command add domain stranger.example apikey "+second, "status ok 200 domain stranger.example:443 added (pending until the owner confirms by mail)")
	m := about(t, mail.Wait(t, 3, 10*time.Second), second)
	if m.Header("Subject") != "Approve the new key for your KeyChest account" || !strings.Contains(m.Body(), second[:8]) {
		t.Fatalf("third mail: %q\n%s", m.Header("Subject"), m.Body())
	}
	approve := link(t, m.Body(), "approve")
	if code, page := get(t, approve); code != 200 || !strings.Contains(page, "Approve key") || !strings.Contains(page, "1 domain") {
		t.Fatalf("GET approve: %d\n%s", code, page)
	}
	if data, _ := c.do("command status apikey " + second); !strings.Contains(data, "confirmed=no") {
		t.Fatalf("a GET approved the key: %s", data)
	}
	if code, page := post(t, approve); code != 200 || !strings.Contains(page, "Key approved") {
		t.Fatalf("POST approve: %d\n%s", code, page)
	}
	if data, _ := c.do("command status apikey " + second); !strings.Contains(data, "confirmed=yes") {
		t.Fatalf("status after approving: %s", data)
	}
	c.exactly("command add domain stranger.example apikey "+second, "status ok 200 domain stranger.example:443 already registered")

	third := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+third+" email keeper@example.com", "status ok 200 claimed for keeper@example.com")
	if code, _ := post(t, link(t, about(t, mail.Wait(t, 4, 10*time.Second), third).Body(), "revoke")); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	c.must("command add domain x.example apikey "+third, "status error 403 apikey revoked")
	c.exactly("command add domain x.example apikey "+first, "status ok 200 domain x.example:443 added")
}

// about returns the one mail of mails about key.
func about(t *testing.T, mails []smtptest.Message, key string) smtptest.Message {
	t.Helper()
	for _, m := range mails {
		if strings.Contains(m.Body(), key[:8]+"...") {
			return m
		}
	}
	t.Fatalf("no mail about %s...", key[:8])
	return smtptest.Message{}
}

// exactly is do, failing the test unless the status is want.
func (c *client) exactly(line, want string) {
	c.t.Helper()
	if _, status := c.do(line); status != want {
		c.t.Fatalf("%q: got %q, want %q", line, status, want)
	}
}

// keychest-lined approve --key-prefix P approves a pending key, as the
// mail's link does.
func TestApproveCommand(t *testing.T) {
	mail := smtptest.Start(t)
	a := startApp(t, withSMTP(mail))
	c := a.dial(t)
	first := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+first+" email keeper@example.com", "status ok 200")
	post(t, link(t, mail.Wait(t, 1, 10*time.Second)[0].Body(), "confirm"))
	second := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+second+" email keeper@example.com", "status ok 200")
	c.must("command add domain later.example apikey "+second, "status ok 200 domain later.example:443 added (pending")
	if code, out, _ := cli(t, a.cfg.DatabaseURL, "keys", "--email", "keeper@example.com"); code != 0 ||
		!strings.Contains(out, second[:8]+"...  client  pending") && !strings.Contains(out, second[:8]+"...  server  pending") {
		t.Fatalf("keys: %d\n%s", code, out)
	}
	code, out, errOut := cli(t, a.cfg.DatabaseURL, "approve", "--key-prefix", second[:8])
	if code != 0 || out != "approved key "+second[:8]+"... (1 domains)\n" {
		t.Fatalf("approve: %d %q %q", code, out, errOut)
	}
	c.exactly("command add domain later.example apikey "+second, "status ok 200 domain later.example:443 already registered")
}

// With no SMTP the mail goes to the log; the flow works on one machine.
func TestMailToLogWithoutSMTP(t *testing.T) {
	var logs bytes.Buffer
	var transport mailer.Transport = mailer.Log{Log: zerologTo(&logs)}
	if err := transport.Send(store.Mail{ID: 7, Kind: "confirm", To: "a@example.com", Subject: "s",
		Body: "Confirm:\n  http://h/confirm/tok\n"}); err != nil {
		t.Fatal(err)
	}
	var entry map[string]any
	if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
		t.Fatalf("%v: %s", err, logs.String())
	}
	if entry["code"] != logcode.MailLogged || entry["to"] != "a@example.com" || !strings.Contains(entry["body"].(string), "Confirm:") {
		t.Fatalf("log entry %v", entry)
	}
	if links := entry["links"].([]any); len(links) != 1 || links[0] != "http://h/confirm/tok" {
		t.Fatalf("links %v", entry["links"])
	}
}

// checkCLI runs the operator's commands against the app's database.
func checkCLI(t *testing.T, a *testApp) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := listDomains(ctx, a.db, cliArgs{email: "owner@example.com"}, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "DOMAIN") || !strings.Contains(lines[1], "watched.example  443   active") {
		t.Fatalf("domains table:\n%s", out.String())
	}
	out.Reset()
	if err := listAccounts(ctx, a.db, cliArgs{json: true}, &out); err != nil {
		t.Fatal(err)
	}
	var accounts []store.Account
	if err := json.Unmarshal(out.Bytes(), &accounts); err != nil || len(accounts) != 1 || accounts[0].Domains != 2 {
		t.Fatalf("accounts JSON %v: %s", err, out.String())
	}
	out.Reset()
	if err := listKeys(ctx, a.db, cliArgs{email: "nobody@example.com"}, &out); explain(err, cliArgs{email: "nobody@example.com"}) != "no account for nobody@example.com" {
		t.Fatalf("keys of a missing account: %v", err)
	}
	for _, bad := range []struct {
		args  cliArgs
		needs string
	}{{cliArgs{}, "email"}, {cliArgs{email: "not-an-email"}, "email"}, {cliArgs{keyPrefix: "ab"}, "key-prefix"}} {
		if err := bad.args.check(bad.needs, 0); err == nil {
			t.Errorf("check(%+v) passed", bad.args)
		}
	}
}

// metric scrapes /metrics and returns the value of one series (summed
// counter and gauge), failing the test if there is none.
func metric(t *testing.T, a *testApp, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := http.Get(a.webURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range families[name].GetMetric() {
		match := true
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
				match = false
			}
		}
		if match {
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s %v", name, labels)
	return 0
}

// checkMetrics parses /metrics with the Prometheus text parser.
func checkMetrics(t *testing.T, a *testApp) {
	value := func(name string, labels map[string]string) float64 { return metric(t, a, name, labels) }
	if v := value("keychest_commands_total", map[string]string{"verb": "claim", "status": "200"}); v != 1 {
		t.Errorf("claims counted: %v", v)
	}
	if v := value("keychest_mails_sent_total", map[string]string{"kind": "confirm"}); v != 1 {
		t.Errorf("mails counted: %v", v)
	}
	if v := value("keychest_connections_open", nil); v < 1 {
		t.Errorf("open connections: %v", v)
	}
	value("keychest_queue_depth", nil)
	value("keychest_writes_waiting", nil)
	value("keychest_command_duration_seconds", nil)
	if resp, err := http.Get(a.webURL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz: %v %v", resp, err)
	}
}
