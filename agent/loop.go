// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/keychest/keychest-lined/internal/logcode"
)

// maxLogBatch is how much of the spool one post carries.
const maxLogBatch = 256 << 10

// ErrRejected is the server refusing the agent's key (401): it does not
// know it, or it was revoked. Remove DIR/identity.json to register anew.
var ErrRejected = errors.New("the server refused the agent's key: unknown or revoked (remove DIR/identity.json to register again)")

// identity loads DIR/identity.json, registering first when there is none.
func (a *Agent) identity(ctx context.Context) (Identity, error) {
	id, err := LoadIdentity(a.cfg.Dir)
	if !errors.Is(err, ErrNoIdentity) {
		return id, err
	}
	sum, err := a.Summary()
	if err != nil {
		return id, err
	}
	var reg Registered
	if err := a.client.postJSON(ctx, PathRegister, sum, &reg); err != nil {
		return id, err
	}
	id = Identity{ID: reg.ID, APIKey: reg.APIKey, Server: a.cfg.Server, LastContact: time.Now().UTC()}
	if err := SaveIdentity(a.cfg.Dir, id); err != nil {
		return id, err
	}
	a.event(a.Log.Info(), logcode.AgentRegistered).Str("id", id.ID).Str("subject", id.KeyPrefix()).
		Str("server", a.cfg.Server).Msg("registered: waiting to be claimed")
	return id, nil
}

// Contact is one exchange with the server: register if needed, push the
// summary with a heartbeat, and post the spooled logs once claimed.
func (a *Agent) Contact(ctx context.Context) (Beat, error) {
	id, err := a.identity(ctx)
	if err != nil {
		return Beat{}, err
	}
	if a.client.Key != id.APIKey { // written only when it changes: a discovery pass may be reading it
		a.client.Key = id.APIKey
	}
	sum, err := a.Summary()
	if err != nil {
		return Beat{}, err
	}
	var beat Beat
	if err := a.client.postJSON(ctx, PathHeartbeat, sum, &beat); err != nil {
		return beat, rejected(err)
	}
	a.refusing.Store(false)
	if beat.Claimed && !id.Claimed {
		a.event(a.Log.Info(), logcode.AgentClaimed).Str("id", id.ID).Str("site", beat.Site).Msg("claimed by an account")
	}
	id.Claimed, id.Site, id.LastContact = beat.Claimed, beat.Site, time.Now().UTC()
	if err := SaveIdentity(a.cfg.Dir, id); err != nil {
		return beat, err
	}
	if beat.Claimed {
		return beat, a.postLogs(ctx)
	}
	a.askClaimMail(ctx, id)
	return beat, nil
}

// postLogs posts the spool in batches, dropping what the server took.
func (a *Agent) postLogs(ctx context.Context) error {
	if n := a.spool.Dropped(); n > 0 {
		a.event(a.Log.Warn(), logcode.AgentSpoolFull).Int("dropped", n).Msg("log spool full: entries kept locally only")
	}
	for range 64 {
		batch, err := a.spool.Peek(maxLogBatch)
		if err != nil || len(batch) == 0 {
			return err
		}
		var ans LogsReply
		if err := a.client.postJSON(ctx, PathLogs, batch, &ans); err != nil {
			return rejected(err)
		}
		if err := a.spool.Drop(len(batch)); err != nil {
			return err
		}
	}
	return nil
}

// rejected turns a 401 into ErrRejected.
func rejected(err error) error {
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusUnauthorized {
		return ErrRejected
	}
	return err
}

// Run is the service: it contacts the server every heartbeat (jittered),
// retrying with jittered back-off while the server is unreachable, until
// ctx ends. ready is called once the local checks passed (systemd's
// READY=1).
func (a *Agent) Run(ctx context.Context, ready func()) error {
	a.event(a.Log.Info(), logcode.AgentStarted).Str("server", a.cfg.Server).Str("dir", a.cfg.Dir).
		Strs("allow", a.allow.Strings()).Msg("started")
	if ready != nil {
		ready()
	}
	if a.cfg.StartJitter > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Duration(rand.Int64N(int64(a.cfg.StartJitter)))):
		}
	}
	b := Backoff{Base: a.cfg.RetryBase, Max: 5 * time.Minute}
	failing := false
	defer a.discoveryDone.Wait()
	ctx, cancel := context.WithCancel(ctx) // cancelled before the wait: a pass under way stops at once
	defer cancel()
	for {
		wait := Jitter(a.cfg.Heartbeat, 0.1)
		beat, err := a.Contact(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrRejected):
			a.event(a.Log.Error(), logcode.AgentRejected).Err(err).Msg("the server refused the agent's key")
			return err
		case err != nil:
			failing, wait = true, b.Next()
			a.event(a.Log.Warn(), logcode.AgentServerDown).Err(err).Dur("retry_in", wait).Msg("server unreachable or failing; retrying")
		default:
			if failing {
				a.event(a.Log.Info(), logcode.AgentServerBack).Msg("server reachable again")
			}
			failing = false
			b.Reset()
			if beat.HeartbeatSeconds > 0 {
				wait = Jitter(time.Duration(beat.HeartbeatSeconds)*time.Second, 0.1)
			}
			if beat.Claimed {
				a.discoverBeside(ctx)
			}
			if beat.Claimed {
				// The long-poll for jobs is the wait until the next heartbeat.
				if err := a.jobRound(ctx, min(wait, 25*time.Second)); err != nil && ctx.Err() == nil {
					failing, wait = true, b.Next()
					a.event(a.Log.Warn(), logcode.AgentServerDown).Err(err).Dur("retry_in", wait).Msg("taking jobs failed; retrying")
				} else {
					wait = 0
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Once is one pass for cron: register or heartbeat, take and run the
// jobs that wait, post the logs, within --for.
func (a *Agent) Once(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.For)
	defer cancel()
	beat, err := a.Contact(ctx)
	if err != nil {
		code := logcode.AgentServerDown
		if errors.Is(err, ErrRejected) {
			code = logcode.AgentRejected
		}
		a.event(a.Log.Warn(), code).Err(err).Msg("once: no contact with the server")
		return err
	}
	if beat.Claimed {
		a.discoverIfDue(ctx, false)
	}
	jobs := 0
	if beat.Claimed {
		deadline, _ := ctx.Deadline()
		if jobs, err = a.Work(ctx, 0, takeUntil(deadline, a.cfg.For)); err != nil {
			a.event(a.Log.Warn(), logcode.AgentServerDown).Err(err).Msg("once: taking jobs failed")
			return err
		}
	}
	if beat.Claimed {
		if err := a.postLogs(ctx); err != nil {
			return err
		}
	}
	a.event(a.Log.Info(), logcode.AgentOnceDone).Bool("claimed", beat.Claimed).Int("jobs", jobs).Msg("once: pass done")
	return nil
}

// jobRound long-polls for jobs for at most wait, and runs those it gets
// and those that come while they run, taking none after wait.
func (a *Agent) jobRound(ctx context.Context, wait time.Duration) error {
	_, err := a.Work(ctx, wait, time.Now().Add(wait))
	return err
}

// takeUntil is when once stops taking jobs: a fifth of --for before its
// deadline, so that the jobs taken last still run and their results are
// posted before the pass ends (a job cut off waits out its time to live).
func takeUntil(deadline time.Time, passFor time.Duration) time.Time {
	return deadline.Add(-passFor / 5)
}
