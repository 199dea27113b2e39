// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/store"
)

// Store is what the monitor needs of the database (store.Postgres).
type Store interface {
	SyncTargets(ctx context.Context, since, due time.Time) (time.Time, error)
	Lease(ctx context.Context, owner string, now, until time.Time, n int) ([]finding.Target, error)
	WriteBack(ctx context.Context, owner string, vs []finding.Verdict, alertBatch time.Duration) ([]bool, error)
	Release(ctx context.Context, owner string, ids []int64) error
	Housekeep(ctx context.Context, cutoff time.Time) (int64, error)
	QueueDigests(ctx context.Context, now time.Time, day time.Weekday, hour int) (int, error)
	Overview(ctx context.Context, now time.Time) (store.MonitorOverview, error)
	LeaseAgents(ctx context.Context, owner string, now, until time.Time, silentAfter time.Duration, n int) ([]store.AgentWatch, error)
	LeaseLDAPCerts(ctx context.Context, owner string, now, until time.Time, n int) ([]store.LDAPCertWatch, error)
}

// The database is the monitor's store; a signature that drifts fails the
// build.
var _ Store = (*store.Postgres)(nil)

// Config is how a monitor runs.
type Config struct {
	Owner            string        // this monitor's name in leases (default: host, pid and a random part)
	Concurrency      int           // targets probed at once
	Lease            time.Duration // how long a leased target is ours without a write
	Poll             time.Duration // how often due targets are looked for
	SyncEvery        time.Duration // how often new and newly confirmed domains become targets
	FullSync         time.Duration // how often every active domain is checked for a target
	History          time.Duration // how long removed targets and closed history are kept
	Grace            time.Duration // how long a stopping monitor lets its probes finish
	AlertBatch       time.Duration // how long an account's alert mail gathers findings before it is sent
	DigestDay        time.Weekday  // the weekly digest's day and hour (UTC)
	DigestHour       int
	Policy           Policy
	Now              func() time.Time
	AgentSilentAfter time.Duration // an agent this silent gets agent_silent (KEYCHEST_AGENT_SILENT_AFTER); 0: not watched
}

// DefaultConfig fills in what a caller left out.
func (c Config) withDefaults() Config {
	if c.Owner == "" {
		host, _ := os.Hostname()
		c.Owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), randomTag())
	}
	c.Concurrency = max(c.Concurrency, 1)
	def := map[*time.Duration]time.Duration{&c.Lease: 5 * time.Minute, &c.Poll: time.Second,
		&c.SyncEvery: 10 * time.Second, &c.FullSync: time.Hour, &c.History: 400 * 24 * time.Hour,
		&c.Grace: 20 * time.Second, &c.AlertBatch: finding.DefaultAlertBatch}
	for p, d := range def {
		if *p <= 0 {
			*p = d
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// syncOverlap is how far back each incremental sync looks before the
// previous one.
const syncOverlap = 30 * time.Second

// Monitor leases due targets, probes them and writes back what the judge
// made of each. Many monitors may share one database: a target is leased
// with FOR UPDATE SKIP LOCKED, probed outside any transaction, and written
// back only while the lease is still held.
type Monitor struct {
	store   Store
	prober  Prober
	cfg     Config
	log     zerolog.Logger
	metrics *Metrics

	poke       chan struct{} // Poke: new targets may be waiting
	synced     atomic.Bool   // false: sync before the next lease
	syncedTo   time.Time     // the database's clock at the last sync (zero: never)
	syncAt     time.Time     // when the last sync ran
	fullAt     time.Time     // when the last full sync ran
	houseAt    time.Time
	digestAt   time.Time
	digestWeek string // the week whose digests are queued
	viewAt     time.Time
	agentsAt   time.Time // when the agents' silence was last judged
	ldapAt     time.Time // when the LDAP certificates' expiry was last judged
	ldapPoked  bool      // a poke waits for the LDAP certificates' next judge
	ldapPokeAt time.Time // when a judge last served a poke
}

// Prober probes one name (see probe.go; tests may pass another).
type Prober interface {
	Probe(ctx context.Context, host string, port int) Result
}

// New returns a monitor; metrics may be nil.
func New(st Store, p Prober, cfg Config, log zerolog.Logger, metrics *Metrics) *Monitor {
	return &Monitor{store: st, prober: p, cfg: cfg.withDefaults(), log: log, metrics: metrics,
		poke: make(chan struct{}, 1)}
}

// Poke tells the monitor that a domain became active or a check was asked
// for: it looks for new targets and due ones at once instead of at its
// next tick. Monitors in other processes find them within SyncEvery.
func (m *Monitor) Poke() {
	m.synced.Store(false)
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// Owner is the name this monitor leases under.
func (m *Monitor) Owner() string { return m.cfg.Owner }

// leased is one target being probed.
type leased struct {
	target finding.Target
	start  time.Time
	result Result
	abort  bool // the probe was cut short by shutdown: release, do not write
}

// Run works until ctx ends, then lets the probes in flight finish (up to
// the grace period), writes them back, and releases anything unwritten.
func (m *Monitor) Run(ctx context.Context) {
	m.log.Info().Str("code", logcode.MonitorStarted).Time("event_time", time.Now()).Str("owner", m.cfg.Owner).
		Int("concurrency", m.cfg.Concurrency).Msg("monitor started")
	m.loop(ctx, false)
	m.log.Info().Str("code", logcode.MonitorStopped).Time("event_time", time.Now()).Str("owner", m.cfg.Owner).Msg("monitor stopped")
}

// Round probes every target due now and writes each back before it
// returns: one round of the schedule, for tests, the benchmark and
// "keychest-lined monitor --once". It reports how many probes it wrote.
func (m *Monitor) Round(ctx context.Context) (int, error) {
	return m.loop(ctx, true)
}

// loop keeps up to Concurrency probes in flight, leasing more as slots
// free up, and hands finished probes to the writer. With once, it ends
// when nothing is due and nothing is in flight; else when ctx ends.
func (m *Monitor) loop(ctx context.Context, once bool) (int, error) {
	probeCtx, cancelProbes := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProbes()
	done := make(chan *leased, m.cfg.Concurrency)
	result := make(chan writeResult, 1)
	go func() { result <- m.writer(done) }()
	free := make(chan struct{}, m.cfg.Concurrency)
	for range m.cfg.Concurrency {
		free <- struct{}{}
	}
	freed := make(chan struct{}, 1)
	var inflight sync.WaitGroup
	tick := time.NewTicker(m.cfg.Poll)
	defer tick.Stop()
	for ctx.Err() == nil {
		m.maintain(ctx)
		batch := m.lease(ctx, len(free))
		for _, l := range batch {
			<-free
			inflight.Add(1)
			go func() {
				m.probe(probeCtx, l)
				done <- l
				free <- struct{}{}
				inflight.Done()
				select {
				case freed <- struct{}{}:
				default:
				}
			}()
		}
		if once && len(batch) == 0 && len(free) == cap(free) {
			break
		}
		if len(batch) > 0 && len(free) > 0 {
			continue // more may be due at once
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-freed:
		case <-m.poke:
		}
	}
	stop := time.AfterFunc(m.cfg.Grace, cancelProbes)
	inflight.Wait()
	stop.Stop()
	close(done)
	r := <-result
	if r.err == nil {
		r.err = ctx.Err()
	}
	return r.written, r.err
}

// lease takes up to n due targets.
func (m *Monitor) lease(ctx context.Context, n int) []*leased {
	if n == 0 {
		return nil
	}
	now := m.cfg.Now()
	targets, err := m.store.Lease(ctx, m.cfg.Owner, now, now.Add(m.cfg.Lease), n)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn().Str("code", logcode.LeaseFailed).Time("event_time", time.Now()).Err(err).Msg("cannot lease targets")
		}
		return nil
	}
	m.metrics.leases(len(targets))
	out := make([]*leased, len(targets))
	for i, t := range targets {
		out[i] = &leased{target: t, start: now}
	}
	return out
}

// probe runs one probe and records whether shutdown cut it short.
func (m *Monitor) probe(ctx context.Context, l *leased) {
	// A probe ends well inside its lease, so that its result is written
	// while the target is still ours (a tarpit cannot outlast it).
	pctx, cancel := context.WithTimeout(ctx, m.cfg.Lease*4/5)
	defer cancel()
	l.result = m.prober.Probe(pctx, l.target.Name, l.target.Port)
	l.abort = ctx.Err() != nil
	if !l.abort {
		m.metrics.probed(l.result)
	}
}

// writeResult is what the writer did: probes written, and the first error.
type writeResult struct {
	written int
	err     error
}

// writer writes back finished probes in batches: whatever has finished
// by the time the previous batch committed.
func (m *Monitor) writer(done <-chan *leased) writeResult {
	var r writeResult
	for l := range done {
		batch := []*leased{l}
	more:
		for len(batch) < 256 {
			select {
			case l, ok := <-done:
				if !ok {
					break more
				}
				batch = append(batch, l)
			default:
				break more
			}
		}
		n, err := m.write(context.Background(), batch)
		r.written += n
		if err != nil {
			r.err = cmp.Or(r.err, err)
			m.log.Warn().Str("code", logcode.WriteBackFailed).Time("event_time", time.Now()).Err(err).Int("targets", len(batch)).
				Msg("cannot write probes back; their leases run out and they are probed again")
		}
	}
	return r
}

// write judges finished probes and writes them back; aborted ones are
// released for another monitor. It reports how many it wrote.
func (m *Monitor) write(ctx context.Context, batch []*leased) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var verdicts []finding.Verdict
	var aborted []int64
	for _, l := range batch {
		if l.abort {
			aborted = append(aborted, l.target.ID)
			continue
		}
		v := m.cfg.Policy.Judge(l.target, l.result, m.cfg.Now())
		v.StartedAt = l.start
		verdicts = append(verdicts, v)
	}
	defer m.metrics.leases(-len(batch))
	if len(aborted) > 0 {
		if err := m.store.Release(ctx, m.cfg.Owner, aborted); err != nil {
			return 0, err
		}
	}
	if len(verdicts) == 0 {
		return 0, nil
	}
	held, err := m.store.WriteBack(ctx, m.cfg.Owner, verdicts, m.cfg.AlertBatch)
	if err != nil {
		return 0, err
	}
	written := 0
	for i, v := range verdicts {
		m.logVerdict(targetOf(batch, v.TargetID), v, held[i])
		if held[i] {
			written++
		}
	}
	return written, nil
}

// targetOf finds the leased target a verdict is about.
func targetOf(batch []*leased, id int64) finding.Target {
	for _, l := range batch {
		if l.target.ID == id {
			return l.target
		}
	}
	return finding.Target{ID: id}
}

// maintain syncs targets, keeps history within its limit and refreshes the
// metrics' overview, each on its own schedule.
func (m *Monitor) maintain(ctx context.Context) {
	now, wall := m.cfg.Now(), time.Now()
	if wall.Sub(m.fullAt) >= m.cfg.FullSync || m.syncedTo.IsZero() {
		m.syncedTo, m.fullAt = time.Time{}, wall
	}
	poked := !m.synced.Load() && wall.Sub(m.syncAt) >= m.cfg.Poll // pokes sync at most once a poll
	if poked || m.syncedTo.IsZero() || wall.Sub(m.syncAt) >= m.cfg.SyncEvery {
		m.synced.Store(true)
		// Domains are stamped with their transaction's start; the overlap
		// covers a transaction that committed after our last look (line
		// commands give up after KEYCHEST_REQUEST_TIMEOUT, 5 s).
		since := m.syncedTo
		if !since.IsZero() {
			since = since.Add(-syncOverlap)
		}
		if to, err := m.store.SyncTargets(ctx, since, now); err == nil {
			m.syncedTo, m.syncAt = to, wall
		} else if ctx.Err() == nil {
			m.log.Warn().Str("code", logcode.LeaseFailed).Time("event_time", time.Now()).Err(err).Msg("cannot sync targets")
		}
	}
	if week := finding.DigestWeek(now); wall.Sub(m.digestAt) >= time.Minute && week != m.digestWeek {
		m.digestAt = wall
		n, err := m.store.QueueDigests(ctx, now, m.cfg.DigestDay, m.cfg.DigestHour)
		if err == nil && !now.Before(finding.DigestMoment(now, m.cfg.DigestDay, m.cfg.DigestHour)) {
			m.digestWeek = week // this week's are queued (by us or another monitor): done until next week
		}
		if n > 0 {
			m.log.Info().Str("code", logcode.DigestsQueued).Time("event_time", time.Now()).Int("accounts", n).Msg("weekly digests queued")
		}
	}
	m.watchAgents(ctx, wall)
	m.watchLDAPCerts(ctx, wall, poked)
	if wall.Sub(m.houseAt) >= time.Hour {
		m.houseAt = wall
		if n, err := m.store.Housekeep(ctx, now.Add(-m.cfg.History)); err == nil && n > 0 {
			m.log.Info().Str("code", logcode.HistoryDeleted).Time("event_time", time.Now()).Int64("rows", n).Msg("old history deleted")
		}
	}
	if m.metrics != nil && wall.Sub(m.viewAt) >= time.Minute {
		m.viewAt = wall
		if o, err := m.store.Overview(ctx, now); err == nil {
			m.metrics.overview(o)
		}
	}
}

// logVerdict logs what changed: findings opened, changed and closed, a
// renewal, a lost lease. A probe that changed nothing is logged at debug.
func (m *Monitor) logVerdict(t finding.Target, v finding.Verdict, held bool) {
	base := func(e *zerolog.Event) *zerolog.Event {
		return e.Time("event_time", v.CheckedAt).Str("target", fmt.Sprintf("%s:%d", t.Name, t.Port))
	}
	if !held {
		base(m.log.Warn()).Str("code", logcode.LeaseLost).Msg("lease ran out before the write; another monitor owns the target")
		return
	}
	for _, f := range v.Open {
		base(m.log.Info()).Str("code", logcode.FindingOpened).Str("kind", f.Kind).Str("severity", f.Severity).Str("detail", f.Detail).Msg("finding opened")
	}
	for _, f := range v.Change {
		base(m.log.Info()).Str("code", logcode.FindingChanged).Str("kind", f.Kind).Str("severity", f.Severity).Str("detail", f.Detail).Msg("finding changed")
	}
	for _, k := range v.Close {
		base(m.log.Info()).Str("code", logcode.FindingClosed).Str("kind", k).Msg("finding closed")
	}
	for _, e := range v.Events {
		base(m.log.Info()).Str("code", logcode.CertRenewed).Str("event", e.Kind).Str("detail", e.Detail).Msg("certificate renewed")
	}
	base(m.log.Debug()).Str("code", logcode.Probed).Str("state", v.State).Time("next_due", v.NextDue).Msg("probed")
}
