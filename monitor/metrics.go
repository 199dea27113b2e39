// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keychest/keychest-lined/store"
)

// Metrics are the monitor's Prometheus metrics. No label names a domain:
// classes and states are fixed lists.
type Metrics struct {
	probes   *prometheus.CounterVec
	duration prometheus.Histogram
	targets  *prometheus.GaugeVec
	overdue  prometheus.Gauge
	held     prometheus.Gauge
}

// NewMetrics registers the monitor's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keychest_monitor_probes_total",
			Help: "Probes made, by result class (ok, or the first failing address's class)."}, []string{"class"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "keychest_monitor_probe_duration_seconds",
			Help: "Time to resolve a target and handshake with all its addresses.", Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10)}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "keychest_monitor_targets",
			Help: "Watched targets by state."}, []string{"state"}),
		overdue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "keychest_monitor_oldest_overdue_seconds",
			Help: "How late the most overdue target nobody holds is."}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "keychest_monitor_leases_held",
			Help: "Targets this process holds a lease on."}),
	}
	for _, c := range Classes {
		m.probes.WithLabelValues(string(c))
	}
	reg.MustRegister(m.probes, m.duration, m.targets, m.overdue, m.held)
	return m
}

func (m *Metrics) probed(r Result) {
	if m != nil {
		m.probes.WithLabelValues(string(r.Class)).Inc()
		m.duration.Observe(r.Took.Seconds())
	}
}

func (m *Metrics) leases(delta int) {
	if m != nil {
		m.held.Add(float64(delta))
	}
}

func (m *Metrics) overview(o store.MonitorOverview) {
	for _, s := range []string{StateUnknown, StateOK, StateWarning, StateCritical} {
		m.targets.WithLabelValues(s).Set(float64(o.ByState[s]))
	}
	m.overdue.Set(o.OldestOverdue.Seconds())
}

// randomTag is a short random string that keeps two monitors apart.
func randomTag() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
