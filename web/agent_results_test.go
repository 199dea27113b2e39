// SPDX-License-Identifier: Apache-2.0

package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/lineproto"
)

// postJobs posts a take (with results) as the agent of key and decodes
// the answer.
func (w *relayWorld) postJobs(t *testing.T, key string, req agent.JobsRequest) (int, agent.JobsReply) {
	t.Helper()
	body, _ := json.Marshal(req)
	hreq, _ := http.NewRequest(http.MethodPost, w.srv.URL+agent.PathJobs, strings.NewReader(string(body)))
	hreq.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var got agent.JobsReply
	if res.StatusCode == http.StatusOK {
		json.NewDecoder(res.Body).Decode(&got)
	}
	return res.StatusCode, got
}

// A take carries the results of the jobs run since the last one: they are
// finished and judged before any job is taken, each once; max 0 takes
// none. A result replayed, or posted with another agent's key (another
// account's included), is refused by id and changes nothing.
func TestResultsRideOnTheTake(t *testing.T) {
	w := newRelayWorld(t, 60*24*time.Hour)
	w.dns.Set("ldap.corp.example", netip.MustParseAddr("127.0.0.50"))
	port := strconv.Itoa(w.target.Port())
	if r := w.line(t, "command add domain ldap.corp.example:"+port+" apikey owner-key-0123456789 site office"); r.Code != lineproto.CodeOK {
		t.Fatalf("add: %+v", r)
	}
	id, _ := agent.LoadIdentity(w.a.Config().Dir)
	code, got := w.postJobs(t, id.APIKey, agent.JobsRequest{Max: 4})
	if code != http.StatusOK || len(got.Jobs) != 1 {
		t.Fatalf("take: %d %+v", code, got)
	}
	job := got.Jobs[0]
	res := w.a.RunJob(context.Background(), job)
	if res.Outcome != agent.OutcomeOK {
		t.Fatalf("run: %+v", res)
	}
	// More addresses than a job may have: refused whole.
	long := res
	long.Addresses = make([]agent.AddressOutcome, 33)
	if code, _ := w.postJobs(t, id.APIKey, agent.JobsRequest{Results: []agent.JobResult{long}}); code != http.StatusBadRequest {
		t.Fatalf("a result of 33 addresses: %d", code)
	}
	// A stranger's agent (another account's) posts the result first.
	stranger := w.strangerAgent(t)
	if code, got := w.postJobs(t, stranger, agent.JobsRequest{Results: []agent.JobResult{res}}); code != http.StatusOK ||
		len(got.Refused) != 1 || got.Refused[0] != job.ID || len(got.Jobs) != 0 {
		t.Fatalf("a stranger's result: %d %+v", code, got)
	}
	if n := w.count(t, `SELECT count(*) FROM agent_jobs WHERE done_at IS NOT NULL`); n != 0 {
		t.Fatalf("jobs finished by a stranger's result: %d", n)
	}
	// The agent's own result, with max 0: recorded and judged, nothing taken.
	w.db.Exec(context.Background(), `UPDATE agent_targets SET next_due = now()`)
	// A job reported twice in one post is refused whole: with a wrong
	// token first, the store would record the right one and the wrong
	// one be judged.
	forged := res
	forged.Token, forged.Outcome = "not-the-token", agent.OutcomeRefused
	for _, twice := range [][]agent.JobResult{{res, res}, {forged, res}} {
		if code, _ := w.postJobs(t, id.APIKey, agent.JobsRequest{Results: twice}); code != http.StatusBadRequest {
			t.Fatalf("a job reported twice in one post: %d", code)
		}
	}
	if n := w.count(t, `SELECT count(*) FROM agent_jobs WHERE done_at IS NOT NULL`); n != 0 {
		t.Fatalf("jobs finished by a post refused whole: %d", n)
	}
	code, got = w.postJobs(t, id.APIKey, agent.JobsRequest{Results: []agent.JobResult{res}})
	if code != http.StatusOK || len(got.Jobs) != 0 || len(got.Refused) != 0 {
		t.Fatalf("own result: %d %+v", code, got)
	}
	if data := w.line(t, "command cert domain ldap.corp.example:"+port+" apikey owner-key-0123456789").Data; !strings.HasPrefix(data, "state=ok ") ||
		!strings.HasSuffix(data, " class=- site=office") || strings.Contains(data, "checked=-") {
		t.Fatalf("cert after the result: %s", data)
	}
	if n := w.count(t, `SELECT count(*) FROM agent_jobs WHERE done_at IS NOT NULL AND outcome = 'ok'`); n != 1 {
		t.Fatalf("jobs finished: %d", n)
	}
	// Replayed: refused, and the finished job stays as it was.
	if code, got := w.postJobs(t, id.APIKey, agent.JobsRequest{Results: []agent.JobResult{res}}); code != http.StatusOK ||
		len(got.Refused) != 1 {
		t.Fatalf("replayed result: %d %+v", code, got)
	}
	if n := w.count(t, `SELECT count(*) FROM agent_jobs`); n != 1 {
		t.Fatalf("jobs queued by posts of max 0: %d", n)
	}
}

// strangerAgent opens an agent of the same site name, claimed by the
// stranger's account, and returns its key.
func (w *relayWorld) strangerAgent(t *testing.T) string {
	t.Helper()
	id, err := agent.LoadIdentity(w.agentOf(t, "stranger-key-0123456").Config().Dir)
	if err != nil {
		t.Fatal(err)
	}
	return id.APIKey
}
