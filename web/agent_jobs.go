// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/store"
)

// Bounds of the job calls.
const (
	maxJobsPerTake = 32
	// maxResultsPerTake bounds the results one take reports.
	maxResultsPerTake = 64
	maxJobWait        = 25 * time.Second
	jobPoll           = 500 * time.Millisecond
)

// agentJobs serves the job and relay calls: the process that accepts a
// relay runs the monitor's probe through it and writes the result.
type agentJobs struct {
	*agentAPI
	prober *monitor.TLSProber
	owner  string // this process's name in the monitor's leases of targets behind sites
}

// mountAgentJobs adds the job calls.
func mountAgentJobs(mux *http.ServeMux, api *agentAPI) {
	host, _ := os.Hostname()
	h := &agentJobs{agentAPI: api, prober: &monitor.TLSProber{Now: time.Now, HandshakeTimeout: monitor.DefaultHandshakeTimeout,
		Roots: api.limits.Roots, Revocation: api.limits.Revocation}, owner: fmt.Sprintf("relay/%s/%d/%s", host, os.Getpid(), relayTag())}
	mux.HandleFunc("POST "+agent.PathJobs, h.take)
	mux.HandleFunc("POST "+agent.PathJobResult, h.result)
	mux.HandleFunc("POST "+agent.PathRelay, h.relay)
}

// take long-polls for the agent's jobs: it answers as soon as jobs wait,
// or empty after the wait asked for (at most 25 s).
func (h *agentJobs) take(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	var req agent.JobsRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil ||
		len(req.Results) > maxResultsPerTake || !validResults(req.Results) {
		h.refuse(w, ref.Prefix, ip, http.StatusBadRequest, "want {\"max\": N, \"wait_seconds\": S, \"results\": [at most 64 job results]}")
		return
	}
	// Results once recorded are judged even if the agent hangs up
	// meanwhile: their jobs are finished, so nothing would judge them later.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), agentTimeout)
	defer cancel()
	done, refused, err := h.finish(ctx, ref, req.Results)
	if err != nil {
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	// The verdicts are written while the first take runs; the answer
	// waits for both.
	judged := make(chan error, 1)
	go func() { judged <- h.judge(ctx, done) }()
	n := 0
	if req.Max > 0 || len(req.Results) == 0 {
		n = min(max(req.Max, 1), maxJobsPerTake)
	}
	raw, taken, err := h.takeWaiting(r.Context(), ref, n, time.Duration(max(req.WaitSeconds, 0))*time.Second, judged)
	if err != nil {
		h.storeFailed(w, ref.Prefix, ip, err)
		return
	}
	if r.Context().Err() == nil {
		writeJSON(w, agent.JobsReply{Jobs: wireJobs(taken, raw), Refused: refused})
	}
}

// takeWaiting takes up to n jobs (none for 0), polling until one comes or
// wait (at most 25 s) passed; after its first take it hears judged, the
// outcome of the verdicts written meanwhile (a failure is logged).
func (h *agentJobs) takeWaiting(rctx context.Context, ref store.KeyRef, n int, wait time.Duration, judged <-chan error) ([]string, []store.AgentJob, error) {
	deadline := time.Now().Add(min(wait, maxJobWait))
	for first := true; ; first = false {
		var raw []string
		var taken []store.AgentJob
		var err error
		if n > 0 {
			var hashes [][32]byte
			raw, hashes = jobTokens(n)
			ctx, cancel := context.WithTimeout(rctx, agentTimeout)
			taken, err = h.queueAndTake(ctx, ref, hashes)
			cancel()
		}
		if first {
			h.heard(<-judged)
		}
		if err != nil || len(taken) > 0 || n == 0 || !time.Now().Before(deadline) {
			return raw, taken, err
		}
		select {
		case <-rctx.Done():
			return nil, nil, nil
		case <-time.After(jobPoll):
		}
	}
}

// heard logs a failure to write the verdicts of a take's results: the
// results are recorded (their jobs finished), their verdicts not, and
// their targets are due again once the jobs' time ran out; the jobs just
// taken still go to the agent.
func (h *agentJobs) heard(err error) {
	if err != nil {
		h.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("verdicts of relayed probes not written")
	}
}

// queueAndTake queues the due targets of the agent's site, then takes jobs.
func (h *agentJobs) queueAndTake(ctx context.Context, ref store.KeyRef, hashes [][32]byte) ([]store.AgentJob, error) {
	if _, err := h.st.QueueDueJobs(ctx, ref, h.limits.JobTTL); err != nil {
		return nil, err
	}
	return h.st.TakeAgentJobs(ctx, ref, hashes)
}

// relayTag is a random part of this process's lease owner name.
func relayTag() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// jobTokens returns n fresh job tokens and their hashes.
func jobTokens(n int) ([]string, [][32]byte) {
	raw, hashes := make([]string, n), make([][32]byte, n)
	for i := range raw {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		raw[i] = hex.EncodeToString(b[:])
		hashes[i] = sha256.Sum256([]byte(raw[i]))
	}
	return raw, hashes
}

func wireJobs(taken []store.AgentJob, tokens []string) []agent.Job {
	out := make([]agent.Job, len(taken))
	for i, j := range taken {
		out[i] = agent.Job{ID: j.ID, Token: tokens[i], Name: j.Name, Port: j.Port, Expires: j.Expires}
	}
	return out
}

// result records a job's end, as its agent reports it (agents before
// the results rode on the take).
func (h *agentJobs) result(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	var res agent.JobResult
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&res)
	if err != nil || !validResults([]agent.JobResult{res}) {
		h.refuse(w, ref.Prefix, ip, http.StatusBadRequest, "want a job result: id, token, outcome ok|refused|unavailable, addresses")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), agentTimeout) // judged even if the agent hangs up
	defer cancel()
	done, refused, err := h.finish(ctx, ref, []agent.JobResult{res})
	if err == nil && len(refused) > 0 {
		err = store.ErrJobRefused
	}
	if err == nil {
		err = h.judge(ctx, done)
	}
	if err != nil {
		h.jobFailed(w, ref.Prefix, ip, err)
		return
	}
	writeJSON(w, map[string]bool{"recorded": true})
}

// validResults reports whether every result has a known outcome and at
// most twice as many addresses as a job may relay (an agent reports at
// most 16, or its failed lookup).
func validResults(rs []agent.JobResult) bool {
	seen := make(map[int64]bool, len(rs))
	for _, res := range rs {
		if res.Outcome != agent.OutcomeOK && res.Outcome != agent.OutcomeRefused && res.Outcome != agent.OutcomeUnavailable ||
			len(res.Addresses) > 2*store.MaxRelaysPerJob || seen[res.ID] {
			return false // a job reported twice: which report to judge would be ambiguous
		}
		seen[res.ID] = true
	}
	return true
}

// finish records the ends of jobs the agent reports, in one statement;
// it returns the results it recorded, to judge, and the ids it refused
// (not a live job of this agent and token: another's, forged, expired,
// finished or replayed).
func (h *agentJobs) finish(ctx context.Context, ref store.KeyRef, results []agent.JobResult) ([]agent.JobResult, []int64, error) {
	if len(results) == 0 {
		return nil, nil, nil
	}
	fs := make([]store.JobFinish, len(results))
	for i, res := range results {
		for k := range res.Addresses {
			res.Addresses[k].Detail = cleanText(res.Addresses[k].Detail, maxItemLen)
		}
		raw, _ := json.Marshal(res.Addresses)
		fs[i] = store.JobFinish{ID: res.ID, Token: sha256.Sum256([]byte(res.Token)), Outcome: res.Outcome, Result: raw}
	}
	done, err := h.st.FinishAgentJobs(ctx, ref, fs)
	if err != nil {
		return nil, nil, err
	}
	finished := make(map[int64]bool, len(done))
	for _, id := range done {
		finished[id] = true
	}
	var judged []agent.JobResult
	var refused []int64
	for _, res := range results {
		if finished[res.ID] {
			judged = append(judged, res)
		} else {
			refused = append(refused, res.ID)
		}
	}
	return judged, refused, nil
}

// jobFailed answers a job call the store refused: 403 for a job that is
// not the agent's live one (another agent's, forged, expired, finished or
// replayed).
func (h *agentJobs) jobFailed(w http.ResponseWriter, prefix string, ip netip.Addr, err error) {
	if errors.Is(err, store.ErrJobRefused) {
		h.refuse(w, prefix, ip, http.StatusForbidden, err.Error())
		return
	}
	h.storeFailed(w, prefix, ip, err)
}

// relay takes an agent's relay of one address of a job: once the job
// checks out, the connection is upgraded and carries the target's bytes,
// and the monitor's own probe makes the TLS handshake through it.
func (h *agentJobs) relay(w http.ResponseWriter, r *http.Request) {
	ip := clientAddr(r, h.proxies)
	ref, ok := h.bearer(w, r, ip)
	if !ok {
		return
	}
	job, err1 := strconv.ParseInt(r.URL.Query().Get("job"), 10, 64)
	addr, err2 := netip.ParseAddr(r.URL.Query().Get("address"))
	if err1 != nil || err2 != nil || addr.Zone() != "" || r.Header.Get("Upgrade") != agent.RelayProtocol {
		h.refuse(w, ref.Prefix, ip, http.StatusBadRequest, "want ?job=ID&address=IP with Upgrade: "+agent.RelayProtocol)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), agentTimeout)
	rel, err := h.st.OpenRelay(ctx, ref, job, sha256.Sum256([]byte(r.Header.Get(agent.HeaderJobToken))), addr.Unmap())
	cancel()
	if err != nil {
		h.jobFailed(w, ref.Prefix, ip, err)
		return
	}
	conn, err := upgrade(w)
	if err != nil {
		return
	}
	defer conn.Close() // after the result is stored: the agent finishes the job once its relays closed
	ap := netip.AddrPortFrom(addr.Unmap(), uint16(rel.Job.Port))
	res := h.prober.ProbeConn(context.Background(), conn, rel.Job.Name, ap, parseCAs(rel.SiteCAs))
	raw, _ := json.Marshal(relayOutcome(res))
	ctx, cancel = context.WithTimeout(context.Background(), agentTimeout)
	defer cancel()
	if err := h.st.RelayResult(ctx, rel.Job.ID, ap.Addr(), raw); err != nil {
		h.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("relay result not stored")
	}
}

// upgrade answers 101 and takes the connection over; reads go through
// what the server had buffered.
func upgrade(w http.ResponseWriter) (net.Conn, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "a relay needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return nil, err
	}
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + agent.RelayProtocol + "\r\nConnection: Upgrade\r\n\r\n")
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, err
	}
	return &bufferedConn{Conn: conn, r: brw.Reader}, nil
}

// bufferedConn reads through r, which may hold bytes read ahead.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// parseCAs parses the PEM certificates an agent pushed for its site.
func parseCAs(pems []string) []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range pems {
		if b, _ := pem.Decode([]byte(p)); b != nil {
			if c, err := x509.ParseCertificate(b.Bytes); err == nil && c.IsCA {
				out = append(out, c)
			}
		}
	}
	return out
}
