// SPDX-License-Identifier: Apache-2.0

package lineproto

import (
	"context"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// workerPool runs blocking requests off the event loop: a bounded queue
// feeding a fixed number of goroutines.
type workerPool struct {
	mu      sync.RWMutex // held for reading while queueing; closed under the write lock
	closed  bool
	jobs    chan *job
	handler Handler
	timeout time.Duration
	log     zerolog.Logger
	wg      sync.WaitGroup
}

type job struct {
	req      *Request
	deadline time.Time
	reply    Reply
	done     chan struct{} // closed once reply is set; or:
	then     func(Reply)   // called with the reply, on the worker
}

func newWorkerPool(h Handler, workers, queue int, timeout time.Duration, log zerolog.Logger) *workerPool {
	p := &workerPool{jobs: make(chan *job, queue), handler: h, timeout: timeout, log: log}
	p.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go p.work()
	}
	return p
}

// do runs req on a worker and waits for its reply. Its deadline is the
// request timeout from when its line was read (req.Read). When the queue is
// full, or the pool is closed, it answers at once with a retryable 503; so
// does a worker that picks it up after its deadline, without running it.
func (p *workerPool) do(req *Request) Reply {
	j := &job{req: req, done: make(chan struct{})}
	if !p.queue(j) {
		return busy()
	}
	<-j.done
	return j.reply
}

// start queues req for a worker, which calls then with its reply (see do
// for its deadline). It reports false, and never calls then, when the
// queue is full or the pool closed.
func (p *workerPool) start(req *Request, then func(Reply)) bool {
	return p.queue(&job{req: req, then: then})
}

// deadline is when req's time is up: the request timeout after its line
// was read.
func (p *workerPool) deadline(req *Request) time.Time {
	read := req.Read
	if read.IsZero() {
		read = time.Now()
	}
	return read.Add(p.timeout)
}

// queue gives j its deadline and a place in the queue, if there is one.
func (p *workerPool) queue(j *job) bool {
	j.deadline = p.deadline(j.req)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	select {
	case p.jobs <- j:
		return true
	default:
		return false
	}
}

func (p *workerPool) work() {
	defer p.wg.Done()
	for j := range p.jobs {
		if time.Now().Before(j.deadline) {
			ctx, cancel := context.WithDeadline(context.Background(), j.deadline)
			j.reply = serveSafely(ctx, p.handler, j.req, p.log)
			cancel()
		} else {
			j.reply = busy() // it waited in the queue past its deadline
		}
		if j.then != nil {
			j.then(j.reply)
		} else {
			close(j.done)
		}
	}
}

// busy is the reply to a request the workers cannot take in time.
func busy() Reply { return Fail(Errorf(CodeUnavailable, "server busy, retry shortly")) }

// close stops the workers once the queued jobs are done.
func (p *workerPool) close() {
	p.mu.Lock()
	p.closed = true
	close(p.jobs)
	p.mu.Unlock()
	p.wg.Wait()
}

// startSafely offers req to a Starter; a panic in Start is logged and
// leaves req to a worker, whose serveSafely answers it.
func startSafely(ctx context.Context, st Starter, req *Request, done func(Reply), log zerolog.Logger) (started bool) {
	defer func() {
		if v := recover(); v != nil {
			Recovered(log, req, v)
			started = false
		}
	}()
	return st.Start(ctx, req, done)
}

// serveSafely calls the handler and turns a panic into a 500 for this
// request alone.
func serveSafely(ctx context.Context, h Handler, req *Request, log zerolog.Logger) (reply Reply) {
	defer func() {
		if v := recover(); v != nil {
			reply = Recovered(log, req, v)
		}
	}()
	return h.Serve(ctx, req)
}

// Recovered logs v, recovered from a panic while answering req, with the
// stack, and returns the reply that req gets for it: 500, for this
// request alone.
func Recovered(log zerolog.Logger, req *Request, v any) Reply {
	log.Error().Str("code", logcode.Internal).Time("event_time", time.Now()).Str("verb", req.Verb).
		Interface("panic", v).Bytes("stack", debug.Stack()).Msg("handler panicked")
	return Fail(Errorf(CodeInternal, "internal error"))
}
