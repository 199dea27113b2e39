// SPDX-License-Identifier: Apache-2.0

package store

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// AgentJobs is the queue of audit jobs for sites' agents. A job is taken
// by one agent of its site (bound to that agent's key from then on, with
// a fresh token), relayed at most once per address, finished once, and
// void once expired.
type AgentJobs interface {
	// QueueAgentJob queues a job to probe name:port for the account's site.
	QueueAgentJob(ctx context.Context, account int64, site, name string, port int, ttl time.Duration) (int64, error)
	// TakeAgentJobs gives the agent up to len(tokens) waiting jobs of its
	// site, job i bound to the hash tokens[i].
	TakeAgentJobs(ctx context.Context, agentKey KeyRef, tokens [][32]byte) ([]AgentJob, error)
	// OpenRelay records the relay of a job to one address; ErrJobRefused
	// unless the agent holds the job, the token is its, it is neither done
	// nor expired, that address was not relayed before, and the job has
	// fewer than MaxRelaysPerJob relays.
	OpenRelay(ctx context.Context, agentKey KeyRef, job int64, token [32]byte, addr netip.Addr) (AgentRelay, error)
	// RelayResult records what the probe through a relay saw.
	RelayResult(ctx context.Context, job int64, addr netip.Addr, result []byte) error
	// FinishAgentJob records a job's outcome, once, under the same rules.
	FinishAgentJob(ctx context.Context, agentKey KeyRef, job int64, token [32]byte, outcome string, result []byte) error
	// FinishAgentJobs records the outcomes of jobs of the agent in one
	// statement, each once and under the same rules; it returns the ids
	// it finished (the others were refused).
	FinishAgentJobs(ctx context.Context, agentKey KeyRef, jobs []JobFinish) ([]int64, error)
}

// JobFinish is a job's end as its agent reports it: its token's hash,
// its outcome and the agent's report (JSON, or nil).
type JobFinish struct {
	ID      int64
	Token   [32]byte
	Outcome string
	Result  []byte
}

var _ AgentJobs = (*Postgres)(nil)

// AgentJob is a job as its agent sees it.
type AgentJob struct {
	ID      int64
	Site    string
	Name    string
	Port    int
	Expires time.Time
}

// AgentRelay is an opened relay: its job, and the internal CAs (PEM) the
// relaying agent pushed for its site.
type AgentRelay struct {
	Job     AgentJob
	SiteCAs []string
}

// MaxRelaysPerJob bounds the addresses one job may be relayed to (the
// monitor probes at most 16 addresses of a name too).
const MaxRelaysPerJob = 16

// ErrJobRefused is a job call that does not match a live job of the agent.
var ErrJobRefused error = ownError("no such live job for this agent and token (another agent's, expired, finished or replayed)")

// QueueAgentJob queues a job for the account's site.
func (p *Postgres) QueueAgentJob(ctx context.Context, account int64, site, name string, port int, ttl time.Duration) (int64, error) {
	var id int64
	err := p.pool.QueryRow(ctx, `INSERT INTO agent_jobs (account_id, site, name, port, expires_at)
		VALUES ($1, $2, $3, $4, now() + $5::interval) RETURNING id`, account, site, name, port, ttl).Scan(&id)
	return id, classify(err)
}

// TakeAgentJobs takes waiting, live jobs of the agent's account and site,
// oldest first; jobs another agent is taking are skipped, not waited for.
func (p *Postgres) TakeAgentJobs(ctx context.Context, agentKey KeyRef, tokens [][32]byte) ([]AgentJob, error) {
	var out []AgentJob
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		ag, err := claimedAgentOf(ctx, tx, agentKey)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id FROM agent_jobs WHERE account_id = $1 AND site = $2
			AND taken_at IS NULL AND expires_at > now() ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`,
			ag.account, ag.site, len(tokens))
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) == 0 {
			return err
		}
		hashes := make([][]byte, len(ids))
		for i := range ids {
			hashes[i] = tokens[i][:]
		}
		rows, err = tx.Query(ctx, `UPDATE agent_jobs j SET taken_by = $1, taken_at = now(), token_hash = t.h
			FROM unnest($2::bigint[], $3::bytea[]) AS t(id, h) WHERE j.id = t.id
			RETURNING j.id, j.site, j.name, j.port, j.expires_at`, ag.id, ids, hashes)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[AgentJob])
		// Job i was given tokens[i]: put them back in the order of ids
		// (ascending), whatever order RETURNING chose.
		slices.SortFunc(out, func(a, b AgentJob) int { return cmp.Compare(a.ID, b.ID) })
		return err
	})
	return out, classify(err)
}

// liveJobSQL selects the job $2 held by the agent of key $1 with token
// hash $3, live and not finished.
const liveJobSQL = `SELECT j.id, j.site, j.name, j.port, j.expires_at,
		coalesce(g.summary->'site_cas', '[]'::jsonb) AS site_cas FROM agent_jobs j JOIN agents g ON g.id = j.taken_by
	WHERE g.key_hash = $1 AND j.id = $2 AND j.token_hash = $3 AND j.done_at IS NULL AND j.expires_at > now()`

// openRelaySQL inserts the relay of live job $2 to $4, once per address
// and at most $5 a job, and returns the job.
const openRelaySQL = `WITH j AS (` + liveJobSQL + `), ins AS (
		INSERT INTO agent_job_relays (job_id, address) SELECT id, $4 FROM j
		WHERE (SELECT count(*) FROM agent_job_relays r WHERE r.job_id = j.id) < $5
		ON CONFLICT DO NOTHING RETURNING job_id
	) SELECT j.* FROM j JOIN ins ON ins.job_id = j.id`

// OpenRelay records the relay of a live job of the agent to addr, once.
// It goes through group commit: the relays opened together share one
// commit.
func (p *Postgres) OpenRelay(ctx context.Context, agentKey KeyRef, job int64, token [32]byte, addr netip.Addr) (AgentRelay, error) {
	var r AgentRelay
	j := &r.Job
	found := false
	err := p.writes.do(ctx, &writeOp{
		order: relayOrder(job, addr),
		queue: func(b *pgx.Batch) {
			b.Queue(openRelaySQL, agentKey.Hash[:], job, token[:], addr, MaxRelaysPerJob)
		},
		read: func(br pgx.BatchResults) error {
			found = false // a batch retried reads anew
			err := br.QueryRow().Scan(&j.ID, &j.Site, &j.Name, &j.Port, &j.Expires, &r.SiteCAs)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		},
	})
	if err == nil && !found {
		return r, ErrJobRefused
	}
	return r, classify(err)
}

// relayOrder is a relay row's place in group commit's lock order.
func relayOrder(job int64, addr netip.Addr) []byte {
	b := binary.BigEndian.AppendUint64([]byte("relay/"), uint64(job))
	return append(b, addr.AsSlice()...)
}

// RelayResult records what the probe through a relay saw, through group
// commit (the results of relays that end together share one commit).
func (p *Postgres) RelayResult(ctx context.Context, job int64, addr netip.Addr, result []byte) error {
	return classify(p.writes.do(ctx, &writeOp{
		order: relayOrder(job, addr),
		queue: func(b *pgx.Batch) {
			b.Queue(`UPDATE agent_job_relays SET result = $3 WHERE job_id = $1 AND address = $2`, job, addr, result)
		},
		read: func(br pgx.BatchResults) error { _, err := br.Exec(); return err },
	}))
}

// FinishAgentJob records the outcome of a live job of the agent, once.
func (p *Postgres) FinishAgentJob(ctx context.Context, agentKey KeyRef, job int64, token [32]byte, outcome string, result []byte) error {
	done, err := p.FinishAgentJobs(ctx, agentKey, []JobFinish{{ID: job, Token: token, Outcome: outcome, Result: result}})
	if err == nil && len(done) == 0 {
		return ErrJobRefused
	}
	return err
}

// FinishAgentJobs records the outcomes of live jobs of the agent, once
// each, in one statement.
func (p *Postgres) FinishAgentJobs(ctx context.Context, agentKey KeyRef, jobs []JobFinish) ([]int64, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	ids, hashes, outcomes, results := make([]int64, len(jobs)), make([][]byte, len(jobs)), make([]string, len(jobs)), make([]*string, len(jobs))
	for i, j := range jobs {
		ids[i], hashes[i], outcomes[i] = j.ID, j.Token[:], j.Outcome
		if j.Result != nil {
			r := string(j.Result)
			results[i] = &r
		}
	}
	rows, err := p.pool.Query(ctx, `UPDATE agent_jobs j SET done_at = now(), outcome = f.outcome, result = f.result::jsonb
		FROM unnest($2::bigint[], $3::bytea[], $4::text[], $5::text[]) AS f(id, h, outcome, result), agents g
		WHERE g.key_hash = $1 AND j.taken_by = g.id AND j.id = f.id AND j.token_hash = f.h
		  AND j.done_at IS NULL AND j.expires_at > now()
		RETURNING j.id`, agentKey.Hash[:], ids, hashes, outcomes, results)
	if err != nil {
		return nil, classify(err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return done, classify(err)
}
