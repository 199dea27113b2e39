// SPDX-License-Identifier: Apache-2.0

package store

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// SiteTargets keeps the targets behind a site: added by an account's key,
// probed only through the site's agents.
type SiteTargets interface {
	// AddSiteTarget records name:port behind site for the key's account;
	// ErrNoSite unless a claimed agent of the account serves the site,
	// ErrDomainLimit past the key's cap (its public domains count too).
	AddSiteTarget(ctx context.Context, t NewSiteTarget) (AddOutcome, error)
	// SiteTargetStatus reads one target of the key behind a site, with how
	// many agents of its site called in within silentAfter; ErrNotFound
	// when the key has no such target.
	SiteTargetStatus(ctx context.Context, k KeyRef, name string, port int, silentAfter time.Duration) (SiteTargetStatus, error)
	// QueueDueJobs queues a job for each due target of the agent's site
	// (one live job per target at most); the target is due again once the
	// job expired, unless its result comes first.
	QueueDueJobs(ctx context.Context, agentKey KeyRef, ttl time.Duration) (int, error)
	// SetSiteTargetResult records a job's verdict on its target.
	SetSiteTargetResult(ctx context.Context, job int64, r SiteTargetResult) error
	// SetSiteTargetResults records jobs' verdicts in one transaction.
	SetSiteTargetResults(ctx context.Context, rs []JobVerdict) error
	// RemoveSiteTarget and CheckSiteTarget remove a target of the key
	// behind a site, or make it due now; false when the key has none such.
	RemoveSiteTarget(ctx context.Context, k KeyRef, name string, port int) (bool, error)
	CheckSiteTarget(ctx context.Context, k KeyRef, name string, port int) (bool, error)
}

var _ SiteTargets = (*Postgres)(nil)

// NewSiteTarget asks to watch Name:Port behind Site for Key.
type NewSiteTarget struct {
	Key  KeyRef
	Site string
	Name string
	Port int
	IP   netip.Addr
	// MaxPerKey refuses with ErrDomainLimit an add past this many names
	// of the key, public and behind sites together (0: no limit).
	MaxPerKey int
}

// SiteTargetResult is a job's verdict on its target.
type SiteTargetResult struct {
	State, Class, Detail, Issuer string
	NotAfter                     *time.Time
	Addresses                    int
	Next                         time.Duration // until the target's next probe
	// Revocation is what the service's revocation check told of the
	// certificates seen (ok, revoked, unknown, none); "" when none was made.
	Revocation string
}

// JobVerdict is a job's verdict on its target.
type JobVerdict struct {
	Job    int64
	Result SiteTargetResult
}

// SiteTargetStatus is a target behind a site as "cert" shows it.
type SiteTargetStatus struct {
	Site       string
	LiveAgents int
	Status     CertStatus
	// SilentAgents counts the site's agents with an open agent_silent
	// finding.
	SilentAgents int
	Revocation   string // the last verdict's SiteTargetResult.Revocation
}

// ErrNoSite is an add behind a site that no claimed agent of the account serves.
var ErrNoSite error = ownError("no claimed agent of this account serves this site")

// AddSiteTarget records a target behind a site. It holds the key's lock
// (lockKeysSQL, as a batch of public adds does), so that adds of one key,
// public or behind a site, wait for each other and its cap is exact.
func (p *Postgres) AddSiteTarget(ctx context.Context, t NewSiteTarget) (AddOutcome, error) {
	var out AddOutcome
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockKeysSQL, [][]byte{t.Key.Hash[:]}); err != nil {
			return err
		}
		account, err := ownerAccount(ctx, tx, t.Key)
		if err != nil {
			return err
		}
		held, err := siteAddRoom(ctx, tx, account, t)
		if err != nil {
			return err
		}
		out = map[bool]AddOutcome{false: DomainAdded, true: DomainExists}[held]
		if _, err := tx.Exec(ctx, upsertSiteTargetSQL, account, t.Key.Hash[:], t.Site, t.Name, t.Port, inet(t.IP), held); err != nil {
			return err
		}
		// The monitor's row of the target, which the central monitor never
		// leases (it is not public): its findings, history and alerts; a
		// removed target's row (its history) is taken up again.
		_, err = tx.Exec(ctx, `INSERT INTO mon_targets (name, port, site_target)
			SELECT s.name, s.port, s.id FROM agent_targets s JOIN api_keys k ON k.id = s.api_key_id
			WHERE k.key_hash = $1 AND s.name = $2 AND s.port = $3
			ON CONFLICT (site_target) DO UPDATE SET active = true, removed_at = NULL WHERE NOT mon_targets.active`,
			t.Key.Hash[:], t.Name, t.Port)
		return err
	})
	return out, classify(err)
}

// keyHeldSQL is how many names key k holds against its cap
// (KEYCHEST_MAX_DOMAINS_PER_KEY, one cap per key): its public domains
// (domain_count) and its targets behind sites.
var keyHeldSQL = `k.domain_count + (SELECT count(*) FROM agent_targets s WHERE s.api_key_id = k.id AND ` + liveSiteTarget("s") + `)`

// upsertSiteTargetSQL records the key's target behind a site: a new one,
// one the key holds ($7: moved to the site given), or one it removed
// (added anew: due now, with when and from where).
const upsertSiteTargetSQL = `INSERT INTO agent_targets (account_id, api_key_id, site, name, port, created_ip)
	SELECT $1, k.id, $3, $4, $5, $6 FROM api_keys k WHERE k.key_hash = $2
	ON CONFLICT (api_key_id, name, port) DO UPDATE SET site = excluded.site,
		next_due = CASE WHEN $7 THEN agent_targets.next_due ELSE now() END,
		created_at = CASE WHEN $7 THEN agent_targets.created_at ELSE now() END,
		created_ip = CASE WHEN $7 THEN agent_targets.created_ip ELSE excluded.created_ip END`

// siteAddRoom refuses an add behind a site that no claimed agent of the
// account serves (ErrNoSite), or that would take the key past its cap
// (ErrDomainLimit; a target the key holds already is no new one, and
// says so: held).
func siteAddRoom(ctx context.Context, tx pgx.Tx, account int64, t NewSiteTarget) (held bool, err error) {
	var served bool
	var count int
	err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM agents WHERE account_id = $2 AND site = $3),
			EXISTS (SELECT 1 FROM agent_targets s WHERE s.api_key_id = k.id AND s.name = $4 AND s.port = $5
				AND `+liveSiteTarget("s")+`),
			`+keyHeldSQL+`
		FROM api_keys k WHERE k.key_hash = $1`, t.Key.Hash[:], account, t.Site, t.Name, t.Port).Scan(&served, &held, &count)
	switch {
	case err != nil:
		return false, err
	case !served:
		return false, ErrNoSite
	case !held && t.MaxPerKey > 0 && count >= t.MaxPerKey:
		return false, ErrDomainLimit
	}
	return held, nil
}

// SiteTargetStatus reads one target of the key behind a site: the
// monitor's view of it (state, certificate, findings, as "cert" gives for
// a public one), with the class the agents gave it (agent_refused) when
// its last job relayed nothing. A revoked key, or one waiting for the
// owner's approval, has none.
func (p *Postgres) SiteTargetStatus(ctx context.Context, k KeyRef, name string, port int, silentAfter time.Duration) (SiteTargetStatus, error) {
	s := SiteTargetStatus{Status: CertStatus{Name: name, Port: port, State: "unknown", Findings: []string{}}}
	var id, account int64
	var class, revocation *string
	err := p.pool.QueryRow(ctx, `SELECT t.id, t.account_id, t.site, t.class, t.revocation,
			(SELECT count(*) FROM agents g WHERE g.account_id = t.account_id AND g.site = t.site
			 AND g.last_seen_at > now() - $4::interval)
		FROM agent_targets t JOIN api_keys k ON k.id = t.api_key_id
		WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND `+keyApproved+` AND t.name = $2 AND t.port = $3 AND `+liveSiteTarget("t"), k.Hash[:], name, port, silentAfter).
		Scan(&id, &account, &s.Site, &class, &revocation, &s.LiveAgents)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNotFound
	}
	if err != nil {
		return s, classify(err)
	}
	rows, err := p.certRows(ctx, account, `t.site_target = $1`, id)
	if err != nil {
		return s, err
	}
	if len(rows) > 0 {
		s.Status = rows[0]
	}
	if class != nil && *class == agentRefused {
		s.Status.Class = *class
	}
	if revocation != nil {
		s.Revocation = *revocation
	}
	s.SilentAgents, err = p.siteSilentAgents(ctx, account, s.Site)
	return s, classify(err)
}

// agentRefused is monitor.ClassAgentRefused (store imports no monitor).
const agentRefused = "agent_refused"

// QueueDueJobs queues the due targets of the agent's site. Agents asking
// together each lock the rows they push, so a target is queued once; a
// job whose agent died leaves its target due again when it expires.
func (p *Postgres) QueueDueJobs(ctx context.Context, agentKey KeyRef, ttl time.Duration) (int, error) {
	tag, err := p.pool.Exec(ctx, `WITH g AS (
			SELECT account_id, site FROM agents WHERE key_hash = $1 AND account_id IS NOT NULL
		), due AS (
			UPDATE agent_targets t SET next_due = now() + $2::interval FROM g
			WHERE t.account_id = g.account_id AND t.site = g.site AND t.next_due <= now() AND `+liveSiteTarget("t")+`
			  AND NOT EXISTS (SELECT 1 FROM agent_jobs j WHERE j.target_id = t.id AND j.done_at IS NULL AND j.expires_at > now())
			RETURNING t.id, t.account_id, t.site, t.name, t.port
		)
		INSERT INTO agent_jobs (account_id, site, name, port, expires_at, target_id)
		SELECT account_id, site, name, port, now() + $2::interval, id FROM due`, agentKey.Hash[:], ttl)
	return int(tag.RowsAffected()), classify(err)
}

// setSiteTargetSQL records job $1's verdict on its target.
const setSiteTargetSQL = `UPDATE agent_targets t SET checked_at = now(), state = coalesce(nullif($2, ''), t.state), class = nullif($3, ''), detail = $4,
		issuer = $5, not_after = $6, addresses = $7, next_due = now() + $8::interval,
		revocation = CASE WHEN $2 = '' AND $3 = '' THEN t.revocation ELSE nullif($9, '') END
	FROM agent_jobs j WHERE j.id = $1 AND t.id = j.target_id
	  AND t.next_due <> 'infinity'` // removed (removeSiteTargetSQL): re-checked on the row a removal held

// SetSiteTargetResult records a job's verdict on its target (none for a
// job without one).
func (p *Postgres) SetSiteTargetResult(ctx context.Context, job int64, r SiteTargetResult) error {
	return p.SetSiteTargetResults(ctx, []JobVerdict{{Job: job, Result: r}})
}

// SetSiteTargetResults records jobs' verdicts, in one round trip and one
// transaction.
func (p *Postgres) SetSiteTargetResults(ctx context.Context, rs []JobVerdict) error {
	if len(rs) == 0 {
		return nil
	}
	rs = slices.SortedFunc(slices.Values(rs), func(a, b JobVerdict) int { return cmp.Compare(a.Job, b.Job) })
	b := &pgx.Batch{}
	for _, v := range rs {
		r := v.Result
		b.Queue(setSiteTargetSQL, v.Job, r.State, r.Class, r.Detail, r.Issuer, r.NotAfter, r.Addresses, r.Next, r.Revocation)
	}
	return classify(p.pool.SendBatch(ctx, b).Close())
}

// RemoveSiteTarget removes a target of the key behind a site, keeping
// its history as a removed public domain's (site_removal.go); false when
// the key has none such.
func (p *Postgres) RemoveSiteTarget(ctx context.Context, k KeyRef, name string, port int) (bool, error) {
	return p.removeSiteTarget(ctx, k, name, port)
}

// CheckSiteTarget makes a target of the key behind a site due now; false
// when the key has none such (or is revoked, or waits for approval).
func (p *Postgres) CheckSiteTarget(ctx context.Context, k KeyRef, name string, port int) (bool, error) {
	tag, err := p.pool.Exec(ctx, `UPDATE agent_targets t SET next_due = least(next_due, now()) FROM api_keys k
		WHERE k.id = t.api_key_id AND k.key_hash = $1 AND k.revoked_at IS NULL AND `+keyApproved+` AND t.name = $2 AND t.port = $3
		  AND `+liveSiteTarget("t"), k.Hash[:], name, port)
	return err == nil && tag.RowsAffected() > 0, classify(err)
}
