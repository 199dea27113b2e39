// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// recorder collects latencies and failures from every client.
type recorder struct {
	mu     sync.Mutex
	lat    []time.Duration
	errors map[string]int
	verbs  map[string]int
}

func newRecorder() *recorder {
	return &recorder{errors: map[string]int{}, verbs: map[string]int{}}
}

func (r *recorder) add(verb string, took time.Duration, kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verbs[verb]++
	if kind != "" {
		r.errors[kind]++
		return
	}
	r.lat = append(r.lat, took)
}

// report is what a run measured.
type report struct {
	Commands   int            `json:"commands"`
	OK         int            `json:"ok"`
	Seconds    float64        `json:"seconds"`
	PerSecond  float64        `json:"per_second"`
	P50ms      float64        `json:"p50_ms"`
	P90ms      float64        `json:"p90_ms"`
	P99ms      float64        `json:"p99_ms"`
	MaxMs      float64        `json:"max_ms"`
	Over100ms  int            `json:"over_100ms"`
	Errors     map[string]int `json:"errors"`
	Verbs      map[string]int `json:"verbs"`
	Idle       int            `json:"idle_conns"`
	RSSMB      float64        `json:"server_rss_mb"`
	CPUSeconds float64        `json:"server_cpu_seconds"`
	// ServerUs and ClientUs are the server's and keychest-bench's own CPU
	// time per successful command, in microseconds.
	ServerUs float64 `json:"server_cpu_us_per_command"`
	ClientUs float64 `json:"client_cpu_us_per_command"`
}

func (r *recorder) report(o options, elapsed time.Duration, before, after procStat, clientCPU float64, idle int) *report {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.Sort(r.lat)
	q := func(p float64) float64 {
		if len(r.lat) == 0 {
			return 0
		}
		return ms(r.lat[int(p*float64(len(r.lat)-1))])
	}
	rep := &report{OK: len(r.lat), Seconds: elapsed.Seconds(), Errors: r.errors, Verbs: r.verbs, Idle: idle,
		P50ms: q(.5), P90ms: q(.9), P99ms: q(.99), MaxMs: q(1),
		RSSMB: float64(after.rssKB) / 1024, CPUSeconds: after.cpu - before.cpu}
	for _, n := range r.verbs {
		rep.Commands += n
	}
	rep.PerSecond = float64(rep.OK) / elapsed.Seconds()
	if rep.OK > 0 {
		rep.ServerUs = rep.CPUSeconds * 1e6 / float64(rep.OK)
		rep.ClientUs = clientCPU * 1e6 / float64(rep.OK)
	}
	for _, l := range r.lat {
		if l >= 100*time.Millisecond {
			rep.Over100ms++
		}
	}
	return rep
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// String renders the report for a terminal.
func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "commands   %d in %.1fs, %d ok: %.0f/s\n", r.Commands, r.Seconds, r.OK, r.PerSecond)
	fmt.Fprintf(&b, "latency    p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  (%d at 100ms or more)\n",
		r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.Over100ms)
	for kind, n := range r.Errors {
		fmt.Fprintf(&b, "error      %d x %s\n", n, kind)
	}
	if r.Idle > 0 {
		fmt.Fprintf(&b, "idle       %d connections held open\n", r.Idle)
	}
	if r.RSSMB > 0 {
		fmt.Fprintf(&b, "server     RSS %.1f MB, CPU %.2fs\n", r.RSSMB, r.CPUSeconds)
	}
	return b.String()
}

// procStat is a process's memory and CPU time.
type procStat struct {
	rssKB int
	cpu   float64
}

// readProc reads VmRSS from /proc/PID/status and utime+stime from
// /proc/PID/stat (clock ticks of 1/100 s).
func readProc(pid int) procStat {
	var s procStat
	if pid <= 0 {
		return s
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				s.rssKB, _ = strconv.Atoi(strings.Fields(v)[0])
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name, which is in parentheses.
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 12 {
			ut, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			s.cpu = (ut + st) / 100
		}
	}
	return s
}

// ownCPU is this process's user and system CPU time so far, in seconds.
func ownCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// median combines runs: the median of each rate and percentile, the worst
// maximum, and the sums of slow replies and errors.
func median(reps []*report) *report {
	if len(reps) == 1 {
		return reps[0]
	}
	pick := func(f func(*report) float64) float64 {
		v := make([]float64, len(reps))
		for i, r := range reps {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	out := &report{Errors: map[string]int{}, Verbs: map[string]int{}, Idle: reps[0].Idle,
		PerSecond:  pick(func(r *report) float64 { return r.PerSecond }),
		P50ms:      pick(func(r *report) float64 { return r.P50ms }),
		P90ms:      pick(func(r *report) float64 { return r.P90ms }),
		P99ms:      pick(func(r *report) float64 { return r.P99ms }),
		RSSMB:      pick(func(r *report) float64 { return r.RSSMB }),
		CPUSeconds: pick(func(r *report) float64 { return r.CPUSeconds }),
		ServerUs:   pick(func(r *report) float64 { return r.ServerUs }),
		ClientUs:   pick(func(r *report) float64 { return r.ClientUs }),
	}
	for _, r := range reps {
		out.Commands += r.Commands
		out.OK += r.OK
		out.Seconds += r.Seconds
		out.Over100ms += r.Over100ms
		out.MaxMs = max(out.MaxMs, r.MaxMs)
		for k, n := range r.Errors {
			out.Errors[k] += n
		}
		for k, n := range r.Verbs {
			out.Verbs[k] += n
		}
	}
	return out
}

// TSV is one line for scripts: rate, p50, p90, p99, max, replies at 100 ms
// or more, failed commands, server RSS (MB), server CPU seconds, the
// errors by kind, and the server's and the client's CPU microseconds per
// command.
func (r *report) TSV() string {
	failed := 0
	var kinds []string
	for k, n := range r.Errors {
		failed += n
		kinds = append(kinds, fmt.Sprintf("%d x %s", n, k))
	}
	slices.Sort(kinds)
	return fmt.Sprintf("%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%.1f\t%.2f\t%s\t%.0f\t%.0f", r.PerSecond, r.P50ms, r.P90ms,
		r.P99ms, r.MaxMs, r.Over100ms, failed, r.RSSMB, r.CPUSeconds, strings.Join(kinds, "; "), r.ServerUs, r.ClientUs)
}
