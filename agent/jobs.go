// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// MaxJobsAtOnce bounds the jobs an agent runs at once (over two takes at
// least: the service gives at most 32 a take). A job mostly waits (on
// its target, the relay, the service's writes), so more of them at once
// keep the line full.
const MaxJobsAtOnce = 64

// maxAddresses is how many addresses of a name a job probes, as the
// monitor does (the service relays no more: store.MaxRelaysPerJob).
const maxAddresses = 16

// TakeJobs asks for waiting jobs, waiting up to wait for one.
func (a *Agent) TakeJobs(ctx context.Context, wait time.Duration) ([]Job, error) {
	return a.takeJobs(ctx, MaxJobsAtOnce, wait, nil)
}

// takeJobs reports results and asks for up to n waiting jobs (none when
// n is 0), waiting up to wait for one. A result the server refused (its
// job expired, say) is logged.
func (a *Agent) takeJobs(ctx context.Context, n int, wait time.Duration, results []JobResult) ([]Job, error) {
	var ans JobsReply
	err := a.client.postJSON(ctx, PathJobs, JobsRequest{Max: n, WaitSeconds: int(wait / time.Second), Results: results}, &ans)
	if err != nil {
		if len(results) > 0 {
			a.event(a.Log.Warn(), logcode.AgentServerDown).Int("results", len(results)).Err(err).Msg("job results not posted")
		}
		return nil, rejected(err)
	}
	for _, id := range ans.Refused {
		a.event(a.Log.Warn(), logcode.AgentServerDown).Int64("job", id).Msg("job result refused: the job expired or is not this agent's")
	}
	return ans.Jobs, nil
}

// RunJobs runs jobs together and reports their results in one call.
func (a *Agent) RunJobs(ctx context.Context, jobs []Job) {
	results := make([]JobResult, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = a.RunJob(ctx, j)
		}()
	}
	wg.Wait()
	if len(results) > 0 {
		a.takeJobs(ctx, 0, 0, results)
	}
}

// RunJob resolves the job's name with the agent's own resolver, and for
// each address dials the target (where allow.conf permits, checked at
// dial time) and relays it to the service, which probes through it. The
// agent sees only ciphertext and judges nothing.
func (a *Agent) RunJob(ctx context.Context, j Job) JobResult {
	ctx, cancel := context.WithDeadline(ctx, j.Expires)
	defer cancel()
	res := JobResult{ID: j.ID, Token: j.Token, Outcome: OutcomeUnavailable}
	dialer := a.guard.Dialer(10*time.Second, a.cfg.Resolver)
	addrs, err := lookup(ctx, dialer.Resolver, j.Name)
	if err != nil {
		res.Addresses = []AddressOutcome{{Outcome: OutcomeUnreachable, Detail: err.Error()}}
		return res
	}
	if len(addrs) > maxAddresses {
		addrs = addrs[:maxAddresses]
	}
	refused := 0
	for _, addr := range addrs {
		out := a.relayAddress(WithJobName(ctx, j.Name), dialer, j, addr)
		res.Addresses = append(res.Addresses, out)
		switch out.Outcome {
		case OutcomeRelayed:
			res.Outcome = OutcomeOK
		case OutcomeRefused:
			refused++
		}
	}
	if refused == len(addrs) {
		res.Outcome = OutcomeRefused
	}
	return res
}

// lookup resolves name (an address is itself), with r (nil: the system's).
func lookup(ctx context.Context, r *net.Resolver, name string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(name); err == nil {
		return []netip.Addr{a}, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("no address for %s", name)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, err
}

// relayAddress dials one address and relays it.
func (a *Agent) relayAddress(ctx context.Context, d *net.Dialer, j Job, addr netip.Addr) AddressOutcome {
	out := AddressOutcome{Address: addr.String(), Outcome: OutcomeUnreachable}
	down, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, uint16(j.Port)).String())
	if errors.Is(err, ErrRefused) {
		out.Outcome = OutcomeRefused
		return out
	}
	if err != nil {
		out.Detail = err.Error()
		return out
	}
	defer down.Close()
	up, err := a.client.openRelay(ctx, j, addr)
	if err != nil {
		out.Detail = "relay: " + err.Error()
		return out
	}
	defer up.Close()
	pipe(ctx, up, down)
	out.Outcome = OutcomeRelayed
	return out
}

// pipe copies both ways between the service (up) and the target (down).
// The relay ends when the service closes it, once it has recorded its
// probe (a target closing first only stops the copy toward the service),
// or when ctx ends; then both are closed.
func pipe(ctx context.Context, up, down io.ReadWriteCloser) {
	upDone := make(chan struct{})
	go copyPooled(up, down)
	go func() { copyPooled(down, up); close(upDone) }()
	select {
	case <-upDone:
	case <-ctx.Done():
	}
	up.Close()
	down.Close()
	<-upDone
}

// copyBufs are the buffers of the relays' copies, reused: a relay is
// short (a handshake: a few KiB each way), and two fresh 32 KiB buffers
// each (io.Copy's) made garbage at the relay rate.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// copyPooled copies src to dst through a buffer of copyBufs (the wrappers
// keep io.CopyBuffer from its own buffer in ReadFrom and WriteTo).
func copyPooled(dst io.Writer, src io.Reader) {
	b := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(b)
	io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *b)
}

// openRelay opens the upstream side of a relay: an HTTP/1.1 upgrade on a
// connection of its own (through the proxy, as every call).
func (c *Client) openRelay(ctx context.Context, j Job, addr netip.Addr) (io.ReadWriteCloser, error) {
	q := url.Values{"job": {strconv.FormatInt(j.ID, 10)}, "address": {addr.String()}}
	u := c.base.JoinPath(PathRelay)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	req.Header.Set(HeaderJobToken, j.Token)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", RelayProtocol)
	res, err := c.relayHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		res.Body.Close()
		return nil, &StatusError{Code: res.StatusCode, Text: clean(string(body), 200)}
	}
	rwc, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		res.Body.Close()
		return nil, errors.New("relay: the upgraded connection is not writable")
	}
	return rwc, nil
}
