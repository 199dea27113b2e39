// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/lineproto/internal/evloop"
)

// Config holds the server's limits and timings.
type Config struct {
	Addr           string        // listen addresses, host:port, comma-separated (see evloop.listenURLs)
	Loops          int           // event loops; 0 means one per CPU
	MaxLine        int           // longest accepted line in bytes
	QuietPeriod    time.Duration // silence after which a line without newline is taken as complete
	IdleTimeout    time.Duration // silence after which a connection is closed with 408
	MaxLifetime    time.Duration // total time a connection may stay open
	RequestTimeout time.Duration // time a blocking request may take
	MaxConns       int           // open connections in total
	MaxConnsPerIP  int           // open connections per source address
	Workers        int           // goroutines running blocking requests
	QueueSize      int           // blocking requests that may wait for a worker
	// LingeringRefusals bounds the refused connections (past MaxConns or
	// MaxConnsPerIP) that close gracefully at the same time; the others
	// close at once. They hold descriptors beyond MaxConns: keep them inside
	// the reserve given to CapToFileLimit.
	LingeringRefusals int
	// ProxyFrom lists the networks whose PROXY protocol header (v1 or v2)
	// is believed: it then gives the connection its client's address.
	ProxyFrom []netip.Prefix
	// ProxyHeaderTimeout is how long a trusted proxy has to finish a PROXY
	// header it has begun; 0 means DefaultProxyHeaderTimeout.
	ProxyHeaderTimeout time.Duration
	// Observe, when set, is called once per command (for metrics).
	Observe func(verb string, code int, took time.Duration)
}

// loopOutputBudget bounds what the event loop writes on one connection over
// its life. evio keeps one pending output per connection and overwrites it
// on a wake (evloop.Conn.OutputQueued); writes this small always fit in a
// fresh socket's send buffer, so they never stall the loop. Larger
// conversations are detached. It also bounds what a client that pipelines
// without reading makes the server hold (answerInline).
const loopOutputBudget = 4096

// Server is the line-protocol server: an event loop (evloop) that frames
// and parses lines and answers cheap commands itself, and hands
// connections with blocking work to goroutines (see docs/architecture.md).
type Server struct {
	cfg     Config
	handler Handler
	log     zerolog.Logger
	loop    *evloop.Loop
	pool    *workerPool
	limits  *connLimits // every open connection, in the loop or detached
	logs    *logLimiter // for the entries a client causes at will

	draining  atomic.Bool  // Shutdown began: refuse new connections
	lingering atomic.Int32 // refused connections closing gracefully
	detaches  atomic.Int64 // connections that left the loop for a session

	addr   chan net.Addr
	addrs  []net.Addr // every listener's address, set before addr is sent
	served chan error
}

// NewServer returns a server that answers with h. Call Serve to run it.
func NewServer(cfg Config, h Handler, log zerolog.Logger) *Server {
	s := &Server{
		cfg:     cfg,
		handler: h,
		log:     log,
		pool:    newWorkerPool(h, cfg.Workers, cfg.QueueSize, cfg.RequestTimeout, log),
		limits:  newConnLimits(cfg.MaxConns, cfg.MaxConnsPerIP),
		logs:    newLogLimiter(),
		addr:    make(chan net.Addr, 1),
		served:  make(chan error, 1),
	}
	s.loop = evloop.New(loopSide{s}, log)
	return s
}

// Addr waits until the server listens and returns its address.
func (s *Server) Addr() net.Addr {
	a := <-s.addr
	s.addr <- a
	return a
}

// Addrs waits until the server listens and returns every listener's
// address, in the order of Config.Addr.
func (s *Server) Addrs() []net.Addr {
	s.Addr()
	return s.addrs
}

// Serve listens and serves until Shutdown. It returns an error if the
// event loop stops for any other reason (evio stops on accept errors other
// than EAGAIN), which the caller must treat as fatal.
func (s *Server) Serve() error {
	err := s.loop.Serve(s.cfg.Addr, s.cfg.Loops)
	s.served <- err
	return err
}

// Shutdown stops accepting connections, lets every command already received
// be answered, closes idle connections, and stops the loop. If ctx ends
// first, the connections left are closed (a command on a worker still runs
// to its end, bounded by the request timeout) and ctx's error is returned.
// Call it once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.forEachConn(func(c *conn) { c.interrupt() })
	err := s.waitForConns(ctx)
	if err != nil {
		s.forEachConn(func(c *conn) { c.closeSession() })
		grace, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout+time.Second)
		s.waitForConns(grace)
		cancel()
	}
	s.loop.Stop()
	if serveErr := <-s.served; serveErr != nil && err == nil {
		err = serveErr
	}
	s.pool.close()
	return err
}

// waitForConns waits until no connection is open, or ctx ends.
func (s *Server) waitForConns(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.limits.open() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func (s *Server) forEachConn(f func(*conn)) {
	for _, c := range s.limits.all() {
		f(c)
	}
}

// OpenConns returns the number of open connections.
func (s *Server) OpenConns() int { return s.limits.open() }

// QueueDepth returns the number of blocking requests waiting for a worker.
func (s *Server) QueueDepth() int { return len(s.pool.jobs) }

// Detaches returns how many connections left the event loop for a
// session goroutine (see docs/architecture.md).
func (s *Server) Detaches() int64 { return s.detaches.Load() }

// LogsSuppressed returns how many log entries the rate limit on client
// errors left out (see logLimiter).
func (s *Server) LogsSuppressed() uint64 { return s.logs.suppressed.Load() }

// logCommand writes the one log entry each command gets; for a client's
// error (4xx) only within the rate limit.
func (s *Server) logCommand(remote netip.Addr, req *Request, r Reply, start time.Time) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(req.Verb, r.Code, time.Since(start))
	}
	var skipped uint64
	if r.Code >= 400 && r.Code < 500 {
		var ok bool
		if ok, skipped = s.logs.allow(start); !ok {
			return // before taking an event from zerolog's pool: it would never go back
		}
	}
	e := s.log.Info()
	if skipped > 0 {
		e = e.Uint64("suppressed_before", skipped)
	}
	e.Str("code", logcode.CommandAnswered).Time("event_time", start).
		Str("remote", remote.String()).Str("verb", req.Verb).Int("status", r.Code).
		Dur("dur_ms", time.Since(start)).Str("subject", req.Subject).Msg("command answered")
}

// logRefused writes the entry for a connection the limits refused, within
// the rate limit: a flood of connections may cause any number of them.
func (s *Server) logRefused(remote netip.Addr, reason string, now time.Time) {
	ok, skipped := s.logs.allow(now)
	if !ok {
		return
	}
	e := s.log.Warn()
	if skipped > 0 {
		e = e.Uint64("suppressed_before", skipped)
	}
	e.Str("code", logcode.ConnRefused).Time("event_time", now).Str("remote", remote.String()).
		Str("reason", reason).Msg("connection refused")
}

// remoteAddr extracts the client's address from the loop's net.Addr.
func remoteAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}
