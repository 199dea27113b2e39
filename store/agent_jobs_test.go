// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// claimedAgent registers an agent of site and gives it to email's account.
func (w *agentWorld) claimedAgent(t *testing.T, key, site, email string) store.KeyRef {
	t.Helper()
	k := ref(key)
	ctx := context.Background()
	if err := w.p.RegisterAgent(ctx, store.NewAgent{ID: key + "@agents.test", Key: k, Site: site, Summary: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Exec(ctx, `UPDATE agents SET account_id = (SELECT id FROM accounts WHERE email = $1), claimed_at = now()
		WHERE key_hash = $2`, email, k.Hash[:]); err != nil {
		t.Fatal(err)
	}
	return k
}

func (w *agentWorld) account(t *testing.T, email string) int64 {
	t.Helper()
	var id int64
	if err := w.db.QueryRow(context.Background(), `SELECT id FROM accounts WHERE email = $1`, email).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func tokens(n int, seed string) [][32]byte {
	out := make([][32]byte, n)
	for i := range out {
		out[i] = sha256.Sum256([]byte(seed + string(rune('a'+i))))
	}
	return out
}

// Each job goes to exactly one agent of its account's site; nobody else's
// agent, not even in a site of the same name, sees it.
func TestAgentJobsTakenOnceBySite(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	a := w.claimedAgent(t, "agt-a-0123456789abc", "office", "owner@example.com")
	b := w.claimedAgent(t, "agt-b-0123456789abc", "office", "owner@example.com")
	other := w.claimedAgent(t, "agt-c-0123456789abc", "lab", "owner@example.com")
	stranger := w.claimedAgent(t, "agt-s-0123456789abc", "office", "stranger@example.com")
	owner := w.account(t, "owner@example.com")
	for i := range 5 {
		if _, err := w.p.QueueAgentJob(ctx, owner, "office", "t"+string(rune('0'+i))+".corp.example", 636, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	w.p.QueueAgentJob(ctx, owner, "office", "old.corp.example", 636, -time.Second) // expired: nobody takes it
	seen := map[int64]string{}
	for _, take := range []struct {
		key  store.KeyRef
		n    int
		want int
	}{{stranger, 10, 0}, {other, 10, 0}, {a, 2, 2}, {b, 10, 3}, {a, 10, 0}} {
		jobs, err := w.p.TakeAgentJobs(ctx, take.key, tokens(take.n, take.key.Prefix))
		if err != nil || len(jobs) != take.want {
			t.Fatalf("%s took %d jobs (%v), want %d", take.key.Prefix, len(jobs), err, take.want)
		}
		for _, j := range jobs {
			if seen[j.ID] != "" || j.Site != "office" || j.Port != 636 {
				t.Fatalf("job %+v taken twice or wrong", j)
			}
			seen[j.ID] = take.key.Prefix
		}
	}
	// Job i of a take is bound to tokens[i], whatever order the UPDATE returned.
	for i := range 20 {
		w.p.QueueAgentJob(ctx, owner, "office", "u"+string(rune('a'+i))+".corp.example", 443, time.Minute)
	}
	toks := tokens(20, "bound")
	jobs, err := w.p.TakeAgentJobs(ctx, a, toks)
	if err != nil || len(jobs) != 20 {
		t.Fatalf("take 20: %d %v", len(jobs), err)
	}
	for i, j := range jobs {
		if _, err := w.p.OpenRelay(ctx, a, j.ID, toks[i], netip.MustParseAddr("10.0.0.1")); err != nil {
			t.Fatalf("job %d (%d of the take) with its token: %v", j.ID, i, err)
		}
	}
	if _, err := w.p.TakeAgentJobs(ctx, w.agent, tokens(1, "x")); !errors.Is(err, store.ErrAgentNotClaimed) {
		t.Fatalf("an unclaimed agent takes: %v", err)
	}
	if _, err := w.p.TakeAgentJobs(ctx, ref("agt-nobody-012345678"), tokens(1, "x")); !errors.Is(err, store.ErrAgentUnknown) {
		t.Fatalf("an unknown agent takes: %v", err)
	}
}

// A job altered or replayed is refused: another agent's key, a wrong
// token, the same address twice, after it finished or expired.
func TestAgentJobRelayAndFinishRefusals(t *testing.T) {
	w := newAgentWorld(t)
	ctx := context.Background()
	a := w.claimedAgent(t, "agt-a-0123456789abc", "office", "owner@example.com")
	b := w.claimedAgent(t, "agt-b-0123456789abc", "office", "owner@example.com")
	owner := w.account(t, "owner@example.com")
	id, _ := w.p.QueueAgentJob(ctx, owner, "office", "ldap.corp.example", 636, time.Minute)
	tok := tokens(1, "job")
	jobs, err := w.p.TakeAgentJobs(ctx, a, tok)
	if err != nil || len(jobs) != 1 || jobs[0].ID != id || jobs[0].Name != "ldap.corp.example" {
		t.Fatalf("take: %+v %v", jobs, err)
	}
	addr1, addr2 := netip.MustParseAddr("10.20.0.5"), netip.MustParseAddr("10.20.0.6")
	wrong := sha256.Sum256([]byte("forged"))
	refused := []struct {
		what  string
		key   store.KeyRef
		job   int64
		token [32]byte
	}{{"another agent's key", b, id, tok[0]}, {"a wrong token", a, id, wrong}, {"another job id", a, id + 1, tok[0]}}
	for _, r := range refused {
		if _, err := w.p.OpenRelay(ctx, r.key, r.job, r.token, addr1); !errors.Is(err, store.ErrJobRefused) {
			t.Errorf("relay with %s: %v", r.what, err)
		}
		if err := w.p.FinishAgentJob(ctx, r.key, r.job, r.token, "ok", nil); !errors.Is(err, store.ErrJobRefused) {
			t.Errorf("finish with %s: %v", r.what, err)
		}
	}
	if r, err := w.p.OpenRelay(ctx, a, id, tok[0], addr1); err != nil || r.Job.Port != 636 || len(r.SiteCAs) != 0 {
		t.Fatalf("relay: %+v %v", r, err)
	}
	if _, err := w.p.OpenRelay(ctx, a, id, tok[0], addr1); !errors.Is(err, store.ErrJobRefused) {
		t.Fatalf("the same address replayed: %v", err)
	}
	if _, err := w.p.OpenRelay(ctx, a, id, tok[0], addr2); err != nil {
		t.Fatalf("the job's second address: %v", err)
	}
	if err := w.p.FinishAgentJob(ctx, a, id, tok[0], "ok", []byte(`{"addresses":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := w.p.FinishAgentJob(ctx, a, id, tok[0], "ok", nil); !errors.Is(err, store.ErrJobRefused) {
		t.Fatalf("finished twice: %v", err)
	}
	if _, err := w.p.OpenRelay(ctx, a, id, tok[0], netip.MustParseAddr("10.20.0.7")); !errors.Is(err, store.ErrJobRefused) {
		t.Fatalf("relay after the finish: %v", err)
	}
	// At most MaxRelaysPerJob addresses a job.
	id3, _ := w.p.QueueAgentJob(ctx, owner, "office", "many.corp.example", 443, time.Minute)
	tok3 := tokens(1, "job3")
	w.p.TakeAgentJobs(ctx, a, tok3)
	for i := range store.MaxRelaysPerJob + 1 {
		_, err := w.p.OpenRelay(ctx, a, id3, tok3[0], netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}))
		if (i < store.MaxRelaysPerJob) != (err == nil) {
			t.Fatalf("relay %d of a job: %v", i, err)
		}
	}
	// Expired between the take and the relay.
	id2, _ := w.p.QueueAgentJob(ctx, owner, "office", "web.corp.example", 443, time.Minute)
	tok2 := tokens(1, "job2")
	if jobs, _ := w.p.TakeAgentJobs(ctx, a, tok2); len(jobs) != 1 || jobs[0].ID != id2 {
		t.Fatalf("take: %+v", jobs)
	}
	w.db.Exec(ctx, `UPDATE agent_jobs SET expires_at = now() - interval '1 second' WHERE id = $1`, id2)
	if _, err := w.p.OpenRelay(ctx, a, id2, tok2[0], addr1); !errors.Is(err, store.ErrJobRefused) {
		t.Fatalf("relay of an expired job: %v", err)
	}
	if err := w.p.FinishAgentJob(ctx, a, id2, tok2[0], "refused", nil); !errors.Is(err, store.ErrJobRefused) {
		t.Fatalf("finish of an expired job: %v", err)
	}
}
