// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// mailGrace is how long stop still waits, past its deadline, for a mail
// being handed to SMTP to be recorded.
const mailGrace = 10 * time.Second

// tasks are the server's background tasks, all in one errgroup: the line
// server, the web and metrics servers, pprof, the monitor, the ACME
// renewal check and the mail sender. launch starts them; stop is the one
// way they end.
type tasks struct {
	group *errgroup.Group
	// run is the context of the monitor and the renewal check: it ends
	// when stop begins, or when a task failed (its cause says which).
	run context.Context
	// stopWork ends the monitor and the renewal check; stopMail ends the
	// mail sender, after the servers stopped taking commands.
	stopWork, stopMail context.CancelFunc
}

// launch starts every background task. The channel reports the line
// server's end.
func (a *app) launch() <-chan error {
	work, stopWork := context.WithCancel(context.Background())
	mail, stopMail := context.WithCancel(context.Background())
	g, run := errgroup.WithContext(work)
	a.tasks = tasks{group: g, run: run, stopWork: stopWork, stopMail: stopMail}
	served := make(chan error, 1)
	g.Go(func() error { err := a.lines.Serve(); served <- err; return err })
	g.Go(func() error { return serveHTTP(a.web, a.webLn) })
	if a.metrics != nil {
		g.Go(func() error { return serveHTTP(a.metrics, a.metricsLn) })
	}
	if a.pprof != nil {
		g.Go(func() error { servePProf(a.pprof, a.log); return nil })
	}
	g.Go(func() error { a.sender.Run(mail); return nil })
	if a.renewals != nil {
		g.Go(func() error { a.renewals(run); return nil })
	}
	if a.monitor != nil {
		g.Go(func() error { a.monitor.Run(run); return nil })
	}
	return served
}

// stop ends every task: the monitor and the renewal check (finishing or
// releasing their leases), the line server (answering what is in flight),
// the web, metrics and pprof servers, and last the mail sender. It waits
// for all of them until ctx ends, and a moment more for the mail sender.
func (a *app) stop(ctx context.Context) error {
	a.tasks.stopWork()
	err := a.lines.Shutdown(ctx)
	for _, srv := range []*http.Server{a.web, a.metrics, a.pprof} {
		if srv != nil {
			srv.Shutdown(ctx)
		}
	}
	a.tasks.stopMail()
	done := make(chan struct{})
	go func() { a.tasks.group.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		select {
		case <-done:
		case <-time.After(mailGrace):
		}
	}
	return err
}

// serveHTTP serves srv on ln until Shutdown, which is no failure.
func serveHTTP(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newPProf is Go's profiler on its own listener (KEYCHEST_PPROF).
func newPProf(addr string) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}

// servePProf serves the profiler; its failure is logged, and the server
// goes on without it.
func servePProf(srv *http.Server, log zerolog.Logger) {
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Warn().Str("code", logcode.PProfFailed).Time("event_time", time.Now()).Err(err).Msg("pprof listener failed")
	}
}
