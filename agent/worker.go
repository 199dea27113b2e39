// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"time"
)

// refillAt is how many of the MaxJobsAtOnce places must be free before
// the agent asks for more jobs while others still run: the next jobs come
// while the rest run, and the results so far ride on that request.
const refillAt = MaxJobsAtOnce / 4

// taken is the answer to one take: the jobs, and how many were asked.
type taken struct {
	jobs  []Job
	asked int
	err   error
}

// worker is the state of Work: jobs running, results not yet posted,
// whether a take is on its way and whether the server may have more.
type worker struct {
	a        *Agent
	done     chan JobResult
	answers  chan taken
	results  []JobResult
	running  int
	ran      int
	taking   bool
	more     bool
	wait     time.Duration
	stop     time.Time
	firstErr error
}

// Work takes jobs and runs them, at most MaxJobsAtOnce at a time, until
// the server has none left or stop has passed (no take after it). The
// next take goes while jobs run, once refillAt places are free, and
// carries the results so far; the last results go on their own. The first
// take waits up to wait for a job. It returns how many jobs it ran; on a
// failed call it lets the running jobs end (results not posted: the jobs
// expire, and their targets are due again) and returns the error.
func (a *Agent) Work(ctx context.Context, wait time.Duration, stop time.Time) (int, error) {
	w := &worker{a: a, done: make(chan JobResult, MaxJobsAtOnce), answers: make(chan taken, 1), more: true, wait: wait, stop: stop}
	for {
		if !w.next(ctx) {
			return w.ran, w.firstErr
		}
		select {
		case r := <-w.done:
			w.results = append(w.results, r)
			w.running--
		case t := <-w.answers:
			w.taking = false
			w.took(ctx, t)
		}
	}
}

// next starts a take when one is due; false when the work is over (and
// every job ended).
func (w *worker) next(ctx context.Context) bool {
	if w.more && (w.firstErr != nil || !time.Now().Before(w.stop)) {
		w.more = false
	}
	if w.taking {
		return true
	}
	free := MaxJobsAtOnce - w.running
	switch {
	case w.more && (free >= refillAt || w.running == 0):
	case !w.more && w.running == 0 && len(w.results) > 0 && w.firstErr == nil:
	default:
		return w.running > 0
	}
	n := 0
	if w.more {
		n = free
	}
	results, wait := w.results, w.wait
	w.results, w.wait, w.taking = nil, 0, true
	go func() {
		jobs, err := w.a.takeJobs(ctx, n, wait, results)
		w.answers <- taken{jobs: jobs, asked: n, err: err}
	}()
	return true
}

// took starts the jobs of a take.
func (w *worker) took(ctx context.Context, t taken) {
	if t.err != nil {
		w.firstErr = t.err
		return
	}
	if t.asked > 0 && len(t.jobs) == 0 {
		w.more = false
	}
	for _, j := range t.jobs {
		w.running++
		w.ran++
		go func() { w.done <- w.a.RunJob(ctx, j) }()
	}
}
