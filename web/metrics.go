// SPDX-License-Identifier: Apache-2.0

package web

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's Prometheus metrics, in a registry of their own.
type Metrics struct {
	Registry    *prometheus.Registry
	commands    *prometheus.CounterVec
	durations   *prometheus.HistogramVec
	mailsSent   *prometheus.CounterVec
	mailsFailed *prometheus.CounterVec
	mailsLost   *prometheus.CounterVec
	verbs       map[string]bool
}

// NewMetrics registers the metrics. verbs are the known commands: any other
// verb a client sends is counted as "other", so clients cannot create
// label values. openConns and queueDepth are read at each scrape.
func NewMetrics(verbs []string, openConns, queueDepth func() int) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), verbs: map[string]bool{"-": true}}
	for _, v := range verbs {
		m.verbs[v] = true
	}
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keychest_commands_total", Help: "Commands answered, by verb and status code.",
	}, []string{"verb", "status"})
	m.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "keychest_command_duration_seconds", Help: "Time from a command's line to its reply.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
	}, []string{"verb"})
	m.mailsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keychest_mails_sent_total", Help: "Mails delivered, by kind.",
	}, []string{"kind"})
	m.mailsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keychest_mails_failed_total", Help: "Failed delivery attempts, by kind.",
	}, []string{"kind"})
	m.mailsLost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keychest_mails_given_up_total", Help: "Mails failed for good (a 5xx, or KEYCHEST_MAIL_GIVE_UP passed), by kind.",
	}, []string{"kind"})
	m.Registry.MustRegister(m.commands, m.durations, m.mailsSent, m.mailsFailed, m.mailsLost,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keychest_connections_open", Help: "Open line-protocol connections.",
		}, func() float64 { return float64(openConns()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keychest_queue_depth", Help: "Database commands waiting for a worker.",
		}, func() float64 { return float64(queueDepth()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// MetricsOnly serves reg's metrics at GET /metrics, and nothing else: the
// handler of a listener of their own (KEYCHEST_METRICS_LISTEN).
func MetricsOnly(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// RegisterBuildInfo adds the gauge keychest_build_info{version,goversion},
// always 1, which says what is running.
func (m *Metrics) RegisterBuildInfo(version string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "keychest_build_info", Help: "The running build: its version and Go version (always 1).",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	g.Set(1)
	m.Registry.MustRegister(g)
}

// CountSuppressedLogs exports suppressed, read at each scrape: the log
// entries the line server's rate limit on client errors left out.
func (m *Metrics) CountSuppressedLogs(suppressed func() uint64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "keychest_log_entries_suppressed_total",
		Help: "Log entries of client errors left out by the rate limit.",
	}, func() float64 { return float64(suppressed()) }))
}

// CountWaitingWrites exports waiting, read at each scrape: the writes
// (add, apikey) queued for the group-commit writer. An add the loop
// starts itself waits there, not in the workers' queue.
func (m *Metrics) CountWaitingWrites(waiting func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keychest_writes_waiting",
		Help: "Writes (add, apikey) waiting for the group-commit writer.",
	}, func() float64 { return float64(waiting()) }))
}

// ObserveCommand counts one answered command.
func (m *Metrics) ObserveCommand(verb string, code int, took time.Duration) {
	if !m.verbs[verb] {
		verb = "other"
	}
	m.commands.WithLabelValues(verb, strconv.Itoa(code)).Inc()
	m.durations.WithLabelValues(verb).Observe(took.Seconds())
}

// MailSent counts a delivered mail.
func (m *Metrics) MailSent(kind string) { m.mailsSent.WithLabelValues(kind).Inc() }

// MailFailed counts a failed delivery attempt.
func (m *Metrics) MailFailed(kind string) { m.mailsFailed.WithLabelValues(kind).Inc() }

// MailGivenUp counts a mail failed for good.
func (m *Metrics) MailGivenUp(kind string) { m.mailsLost.WithLabelValues(kind).Inc() }
