// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/internal/smtptest"
)

// stop returns only once every background task has ended: the renewal
// check too, which stops late here on purpose.
func TestStopWaitsForEveryTask(t *testing.T) {
	a, _ := wireApp(t, nil)
	var ended atomic.Bool
	started := make(chan struct{})
	a.renewals = func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // a check that finishes its round
		ended.Store(true)
	}
	a.launch()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.stop(ctx); err != nil {
		t.Fatal(err)
	}
	if !ended.Load() {
		t.Fatal("stop returned before the renewal check ended")
	}
}

// KEYCHEST_ALERT_BATCH reaches the findings ACME events raise, given to
// the store when it opens: at 50 ms the alert of a failed authorization
// is mailed at once, not after the default 5 minutes. The monitor is off,
// so that no probe raises an alert of its own.
func TestACMEAlertBatchIsTheSetting(t *testing.T) {
	mail := smtptest.Start(t)
	a := startApp(t, func(c *Config) {
		withSMTP(mail)(c)
		c.Monitor, c.AlertBatch = "off", 50*time.Millisecond
	})
	c := a.dial(t)
	key := c.must("command apikey", "status ok 200")
	c.must("command claim apikey "+key+" email acme@example.com", "status ok 200")
	post(t, link(t, mail.Wait(t, 1, 10*time.Second)[0].Body(), "confirm"))
	c.must("command add domain www.acme.test apikey "+key, "status ok 200")
	env := func(id int, msg, params string) string {
		return fmt.Sprintf(`{"msg":%q,"params":%s,"time":"2026-11-23 10:0%d:00","proxy":"p@amp","id":%d,"host":"h","ip":"127.0.0.1","version":"v","backlog":0,"log_time":"2026-11-23 10:00:01"}`+"\n", msg, params, id, id)
	}
	body := env(1, "new-order", `{"status":"pending","order":"/order/7","server":"ca.test","account":"/acct/1","domains":[{"type":"dns","value":"www.acme.test"}]}`) +
		env(2, "auth", `{"status":"invalid","server":"ca.test","account":"/acct/1","identifier":{"type":"dns","value":"www.acme.test"},"error":{"type":"urn:ietf:params:acme:error:connection","detail":"Connection refused"}}`)
	req, _ := http.NewRequest(http.MethodPost, a.webURL+"/api/v1/acme/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	alert := mail.Wait(t, 2, 15*time.Second)[1]
	if !strings.Contains(alert.Body(), "www.acme.test") {
		t.Fatalf("alert mail: %q\n%s", alert.Header("Subject"), alert.Body())
	}
}
