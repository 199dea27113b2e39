// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/mailer"
	"github.com/keychest/keychest-lined/store"
)

// sendAll delivers every queued mail at once, as the sender would once
// they are due, composing alerts and digests; it returns them.
func (w *world) sendAll() []store.Mail {
	w.t.Helper()
	w.exec(`UPDATE outbox SET next_try_at = now() WHERE sent_at IS NULL`)
	var sent []store.Mail
	for {
		found, err := w.db.SendNext(context.Background(), func(m store.Mail) store.Attempt {
			mailer.Composer{PublicURL: "https://keychest.test"}.Fill(&m)
			sent = append(sent, m)
			return store.Attempt{}
		})
		if err != nil {
			w.t.Fatal(err)
		}
		if !found {
			return sent
		}
	}
}

// probeAt moves the clock to at and runs a round.
func (w *world) probeAt(m *Monitor, at time.Time) {
	w.t.Helper()
	w.mu.Lock()
	w.now = at
	w.mu.Unlock()
	w.round(m)
}

// Severity rising warning, critical, expired gives three mails; staying
// expired for ten days gives no more; the renewal gives one "resolved".
func TestAlertMailsOnRiseAndResolve(t *testing.T) {
	w := newWorld(t)
	start := w.now
	srv := w.serve("127.0.0.2", "rise.test", 90*day, 25*day) // 25 days left at start
	w.register("owner@example.com", true, srv.Port(), "rise.test")
	m := w.monitor("m")
	w.probeAt(m, start)
	if sent := w.sendAll(); len(sent) != 0 {
		t.Fatalf("healthy certificate mailed: %+v", sent)
	}
	var mails []store.Mail
	for _, at := range []time.Duration{5 * day, 20 * day, 26 * day} { // warning, critical, expired
		w.probeAt(m, start.Add(at))
		mails = append(mails, w.sendAll()...)
	}
	if len(mails) != 3 {
		t.Fatalf("%d mails for three severities, want 3", len(mails))
	}
	for i, want := range []string{"WARNING  rise.test", "CRITICAL  rise.test", "EXPIRED  rise.test"} {
		if !strings.Contains(mails[i].Body, want) || mails[i].To != "owner@example.com" ||
			!strings.Contains(mails[i].Body, "https://keychest.test/account/") ||
			!strings.HasPrefix(mails[i].ListUnsubscribe, "https://keychest.test/alerts_off/") {
			t.Fatalf("mail %d: %s\n%s", i, mails[i].Subject, mails[i].Body)
		}
	}
	if !strings.Contains(mails[0].Body, "certbot renew --dry-run") {
		t.Fatalf("no advice: %s", mails[0].Body)
	}
	for d := 27; d < 37; d++ {
		w.probeAt(m, start.Add(time.Duration(d)*day))
	}
	if sent := w.sendAll(); len(sent) != 0 {
		t.Fatalf("a finding that stayed the same was mailed again: %d", len(sent))
	}
	srv.Swap(w.issue(certLeaf(start.Add(37*day), 90*day, 90*day, "rise.test")))
	w.probeAt(m, start.Add(37*day+time.Hour))
	sent := w.sendAll()
	if len(sent) != 1 || !strings.Contains(sent[0].Subject, "resolved") || !strings.Contains(sent[0].Body, "rise.test") {
		t.Fatalf("after the renewal: %+v", sent)
	}
	if n := w.count(`SELECT count(*) FROM outbox WHERE link_tokens IS NOT NULL OR dedup_key LIKE '%:open'`); n != 0 {
		t.Fatalf("%d sent mails still hold tokens or their batch key", n)
	}
}

// 200 domains of one account failing together give one mail listing
// them all; three monitors on one database still give one.
func TestOutageOfManyDomainsIsOneMail(t *testing.T) {
	w := newWorld(t)
	closed, _ := net.Listen("tcp", "127.0.0.2:0")
	port := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	var names []string
	for i := range 200 {
		name := fmt.Sprintf("down%d.test", i)
		names = append(names, name)
		w.dns[name] = []netip.Addr{netip.MustParseAddr("127.0.0.2")}
	}
	w.register("ops@example.com", true, port, names...)
	w.register("other@example.com", false, port, names[0]) // pending: never mailed
	for round := range 2 {
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Add(1)
			go func() { defer wg.Done(); w.round(w.monitor(fmt.Sprintf("m%d", i))) }()
		}
		wg.Wait()
		if round == 0 {
			if sent := w.sendAll(); len(sent) != 0 {
				t.Fatalf("a single failed probe was mailed: %d mails", len(sent))
			}
			w.advance(6 * time.Minute)
		}
	}
	sent := w.sendAll()
	if len(sent) != 1 || len(sent[0].Items) != 200 || sent[0].To != "ops@example.com" {
		t.Fatalf("%d mails (first with %d items), want 1 with 200", len(sent), itemsOf(sent))
	}
	if !strings.HasPrefix(sent[0].Subject, "KeyChest: 200 problems") {
		t.Fatalf("subject %q", sent[0].Subject)
	}
}

func itemsOf(ms []store.Mail) int {
	if len(ms) == 0 {
		return 0
	}
	return len(ms[0].Items)
}

// The digest is queued once a week per account with domains, and not for
// an account without any.
func TestDigestOncePerWeek(t *testing.T) {
	w := newWorld(t)
	srv := w.serve("127.0.0.2", "weekly.test", 90*day, 50*day)
	w.register("weekly@example.com", true, srv.Port(), "weekly.test")
	w.register("empty@example.com", true, srv.Port())
	w.round(w.monitor("m"))
	monday := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   time.Time
		want int
	}{
		{monday.Add(-time.Hour), 0},    // before this week's moment
		{monday, 1},                    // the moment
		{monday.Add(5 * time.Hour), 0}, // same week again
		{monday.Add(3 * day), 0},       // later that week
		{monday.Add(7 * day), 1},       // next week
	} {
		n, err := w.db.QueueDigests(context.Background(), c.at, time.Monday, 7)
		if err != nil || n != c.want {
			t.Fatalf("at %s: queued %d (%v), want %d", c.at, n, err, c.want)
		}
	}
	sent := w.sendAll()
	if len(sent) != 2 || sent[0].To != "weekly@example.com" || !strings.Contains(sent[0].Body, "weekly.test:") ||
		!strings.Contains(sent[0].Body, "added") || !strings.HasPrefix(sent[0].ListUnsubscribe, "https://keychest.test/digest_off/") {
		t.Fatalf("digests: %d; %+v", len(sent), sent)
	}
}

// A batch still gathering when its owner turns alerts off is not sent.
func TestAlertsOffBeforeSendingSuppresses(t *testing.T) {
	w := newWorld(t)
	srv := w.serve("127.0.0.2", "quiet.test", 90*day, 10*day)
	w.register("quiet@example.com", true, srv.Port(), "quiet.test")
	w.round(w.monitor("m"))
	if n := w.count(`SELECT count(*) FROM outbox WHERE kind = 'alert'`); n != 1 {
		t.Fatalf("%d alert batches, want 1", n)
	}
	w.exec(`UPDATE accounts SET alerts_off_at = now()`)
	if sent := w.sendAll(); len(sent) != 0 {
		t.Fatalf("sent after alerts were turned off: %+v", sent)
	}
	if n := w.count(`SELECT count(*) FROM outbox WHERE kind = 'alert' AND failed_at IS NOT NULL
		AND last_error LIKE 'not sent: the owner turned alerts off%' AND link_tokens IS NULL`); n != 1 {
		t.Fatal("the suppressed batch is not recorded as not sent, tokens dropped")
	}
}

// A batch being handed to a slow SMTP server does not hold up the write
// of the account's next finding: that goes into a new batch at once.
func TestSlowSendDoesNotBlockWriteBack(t *testing.T) {
	w := newWorld(t)
	a := w.serve("127.0.0.2", "first.test", 90*day, 10*day)
	b := w.serve("127.0.0.3", "second.test", 90*day, 60*day)
	w.register("slow@example.com", true, a.Port(), "first.test")
	w.register("slow@example.com", true, b.Port(), "second.test")
	m := w.monitor("m")
	w.round(m)
	w.exec(`UPDATE outbox SET next_try_at = CASE WHEN kind = 'alert' THEN now() ELSE now() + interval '1 day' END`)
	sending, release := make(chan struct{}), make(chan struct{})
	letGo := sync.OnceFunc(func() { close(release) })
	defer letGo() // a failing test must not leave the send hanging
	done := make(chan error, 1)
	go func() {
		_, err := w.db.SendNext(context.Background(), func(store.Mail) store.Attempt {
			close(sending)
			<-release // SMTP takes its time
			return store.Attempt{}
		})
		done <- err
	}()
	<-sending
	b.Swap(w.issue(certLeaf(w.now, 90*day, 5*day, "second.test")))
	w.exec(`UPDATE mon_targets SET next_due = $1`, w.now)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.Round(ctx); err != nil {
		t.Fatalf("the write-back waited for the mail being sent: %v", err)
	}
	letGo()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := w.count(`SELECT count(*) FROM outbox WHERE kind = 'alert' AND sent_at IS NULL`); n != 1 {
		t.Fatalf("%d alert batches waiting, want the new one", n)
	}
}
