// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keychest/keychest-lined/internal/pgtest"
	"github.com/keychest/keychest-lined/store"
)

// By default /metrics is on the web listener, beside the mail links.
func TestMetricsOnWebListenerByDefault(t *testing.T) {
	a := startApp(t, nil)
	if a.metricsLn != nil {
		t.Fatal("a metrics listener with KEYCHEST_METRICS_LISTEN empty")
	}
	if code, body := get(t, a.webURL+"/metrics"); code != 200 || !strings.Contains(body, "keychest_build_info") {
		t.Fatalf("web /metrics: %d", code)
	}
}

// With KEYCHEST_METRICS_LISTEN, /metrics is on that listener only: the web
// listener (public API, mail links) answers it 404, and the metrics
// listener serves nothing else.
func TestMetricsListenApart(t *testing.T) {
	a := startApp(t, func(c *Config) { c.MetricsListen = "127.0.0.1:0" })
	metricsURL := "http://" + a.metricsLn.Addr().String()
	if code, body := get(t, metricsURL+"/metrics"); code != 200 || !strings.Contains(body, "keychest_build_info") ||
		!strings.Contains(body, "keychest_connections_open") {
		t.Fatalf("metrics listener /metrics: %d", code)
	}
	for url, want := range map[string]int{
		a.webURL + "/metrics": 404, a.webURL + "/healthz": 200,
		metricsURL + "/healthz": 404, metricsURL + "/confirm/x": 404,
	} {
		if code, _ := get(t, url); code != want {
			t.Errorf("GET %s: %d, want %d", url, code, want)
		}
	}
}

// The monitor process does the same: /healthz on KEYCHEST_HTTP_LISTEN,
// /metrics there or, when set, on KEYCHEST_METRICS_LISTEN only.
func TestMonitorMetricsListen(t *testing.T) {
	db, err := store.Open(context.Background(), pgtest.NewDatabase(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "monitor_test_total", Help: "a test"}))
	for _, apart := range []bool{false, true} {
		web, metrics := freeAddr(t), ""
		if apart {
			metrics = freeAddr(t)
		}
		h, err := listenMonitorHTTP(web, metrics, reg, db)
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.run(ctx, func(ctx context.Context) { <-ctx.Done() }) }()
		want := map[string]int{"http://" + web + "/healthz": 200, "http://" + web + "/metrics": 200}
		if apart {
			want["http://"+web+"/metrics"], want["http://"+metrics+"/metrics"] = 404, 200
		}
		for url, code := range want {
			if got, _ := get(t, url); got != code {
				t.Errorf("apart=%v: GET %s: %d, want %d", apart, url, got, code)
			}
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("apart=%v: run after its context ended: %v", apart, err)
		}
		for _, addr := range []string{web, metrics} {
			if c, err := net.Dial("tcp", addr); addr != "" && err == nil {
				c.Close()
				t.Errorf("apart=%v: %s still listens after run returned", apart, addr)
			}
		}
	}
}

// The monitor process's tasks end together: a server that fails ends the
// monitor's context, and run returns the failure once every task ended.
func TestMonitorTasksEndTogether(t *testing.T) {
	db, err := store.Open(context.Background(), pgtest.NewDatabase(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	h, err := listenMonitorHTTP(freeAddr(t), freeAddr(t), prometheus.NewRegistry(), db)
	if err != nil {
		t.Fatal(err)
	}
	working := make(chan struct{})
	var workEnded atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- h.run(context.Background(), func(ctx context.Context) {
			close(working)
			<-ctx.Done()
			workEnded.Store(true)
		})
	}()
	<-working
	h.apartLn.Close() // the metrics listener fails under its server
	select {
	case err := <-done:
		if err == nil || !workEnded.Load() {
			t.Fatalf("run returned %v, the monitor ended: %v", err, workEnded.Load())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a failed server did not end the monitor's tasks")
	}
	if c, err := net.Dial("tcp", h.ln.Addr().String()); err == nil {
		c.Close()
		t.Error("/healthz still listens after run returned")
	}
}

// freeAddr returns a loopback address no one listens on just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestMetricsListenSetting(t *testing.T) {
	t.Setenv("KEYCHEST_DATABASE_URL", "postgres://example")
	for value, ok := range map[string]bool{"": true, "127.0.0.1:9323": true, "[::1]:9323": true,
		"127.0.0.1": false, "127.0.0.1:1,127.0.0.1:2": false, ":": false} {
		t.Setenv("KEYCHEST_METRICS_LISTEN", value)
		if _, err := loadConfig(); (err == nil) != ok {
			t.Errorf("KEYCHEST_METRICS_LISTEN=%q: %v", value, err)
		}
	}
}
