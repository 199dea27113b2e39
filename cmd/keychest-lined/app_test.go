// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/pgtest"
)

// testApp is the whole server on a fresh database, on free loopback ports.
type testApp struct {
	*app
	cfg      Config
	lineAddr string
	webURL   string
}

// startApp wires and launches the server as main does; change adjusts the
// configuration first.
//
// The weekly digest is set to a moment of this week still to come, so that
// no test gets a digest among the mails it counts (with the defaults, a
// test run on a Monday after 07:00 UTC did).
func startApp(t *testing.T, change func(*Config)) *testApp {
	t.Helper()
	a, cfg := wireApp(t, change)
	a.launch()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return &testApp{app: a, cfg: cfg, lineAddr: a.lines.Addr().String(), webURL: "http://" + a.webLn.Addr().String()}
}

// wireApp wires the server as main does, on a database of its own, and
// leaves it to the test to launch; its database pool closes at the end.
func wireApp(t *testing.T, change func(*Config)) (*app, Config) {
	t.Helper()
	var cfg Config
	if err := envconfig.Process("KEYCHEST_TEST_UNSET", &cfg); err != nil { // defaults only
		t.Fatal(err)
	}
	cfg.Listen, cfg.HTTPListen, cfg.DatabaseURL = "127.0.0.1:0", "127.0.0.1:0", pgtest.NewDatabase(t)
	cfg.MonitorResolver = "127.0.0.1:1" // names resolve nowhere: no test reaches beyond loopback
	cfg.DigestDay, cfg.DigestHour = digestNotDue(time.Now())
	if change != nil {
		change(&cfg)
	}
	a, err := start(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.db.Close)
	return a, cfg
}

// client is one line-protocol connection.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (a *testApp) dial(t *testing.T) *client {
	c, err := net.Dial("tcp", a.lineAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// do sends one command and returns the data (if any) and the status line.
func (c *client) do(line string) (data, status string) {
	c.t.Helper()
	if _, err := c.c.Write([]byte(line + "\n")); err != nil {
		c.t.Fatal(err)
	}
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("%q: %v", line, err)
		}
		l = strings.TrimSuffix(l, "\n")
		if d, ok := strings.CutPrefix(l, "data "); ok {
			data = d
			continue
		}
		return data, l
	}
}

// must is do, failing the test unless the status starts with want.
func (c *client) must(line, want string) string {
	c.t.Helper()
	data, status := c.do(line)
	if !strings.HasPrefix(status, want) {
		c.t.Fatalf("%q: got %q, want %q...", line, status, want)
	}
	return data
}

// get fetches a page; post presses its button.
func get(t *testing.T, url string) (int, string)  { return fetch(t, http.MethodGet, url) }
func post(t *testing.T, url string) (int, string) { return fetch(t, http.MethodPost, url) }

func fetch(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func zerologTo(w io.Writer) zerolog.Logger { return zerolog.New(w) }

// digestNotDue returns a digest day and hour whose moment this week
// (finding.DigestMoment, weeks start on Monday) is still to come at now:
// tomorrow, or late on Sunday when today is Sunday.
func digestNotDue(now time.Time) (weekday, int) {
	now = now.UTC()
	if now.Weekday() == time.Sunday {
		return weekday(time.Sunday), 23
	}
	return weekday(now.Weekday() + 1), 0
}
