// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/agent"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/mailer"
	"github.com/keychest/keychest-lined/store"
)

// emailAgent opens an agent in a fresh DIR that asks to be claimed for email.
func emailAgent(t *testing.T, server, email string) *agent.Agent {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keychest-agent")
	os.Mkdir(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "allow.conf"), []byte("allow 10.20.0.0/16 443,636 *.corp.example\n"), 0o600)
	a, err := agent.Open(agent.Config{Dir: dir, Server: server, Version: "9.9", UID: os.Getuid(), Site: "lab",
		Email: email, Log: filepath.Join(dir, "agent.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// sendMails words and "sends" every due mail, returning them.
func sendMails(t *testing.T, st *store.Postgres, url string) []store.Mail {
	t.Helper()
	var out []store.Mail
	for {
		more, err := st.SendNext(context.Background(), func(m store.Mail) store.Attempt {
			mailer.Composer{PublicURL: url}.Fill(&m)
			out = append(out, m)
			return store.Attempt{}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			return out
		}
	}
}

var approveLink = regexp.MustCompile(`/agent_approve/(\S+)`)

// An agent run with --email: one mail, showing what the agent says of
// itself; the link's GET changes nothing, its POST gives the agent to the
// (now confirmed) account.
func TestAgentClaimedByEmail(t *testing.T) {
	s := newAgentSide(t)
	a := emailAgent(t, s.srv.URL, "new-owner@example.com")
	ctx := context.Background()
	for range 3 {
		if err := a.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mails := sendMails(t, s.st, s.srv.URL)
	if len(mails) != 1 || mails[0].Kind != "agent_claim" || mails[0].To != "new-owner@example.com" {
		t.Fatalf("mails: %+v", mails)
	}
	sum, _ := a.Summary()
	body := mails[0].Body
	for _, want := range []string{sum.Host, "9.9", "lab", "allow 10.20.0.0/16 443,636 *.corp.example", sum.Addresses[0]} {
		if !strings.Contains(body, want) {
			t.Fatalf("mail lacks %q:\n%s", want, body)
		}
	}
	m := approveLink.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no approve link:\n%s", body)
	}
	link := s.srv.URL + "/agent_approve/" + m[1]
	res, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", res.StatusCode)
	}
	if n := s.count(t, `SELECT count(*) FROM agents WHERE account_id IS NULL`); n != 1 {
		t.Fatal("the GET claimed the agent")
	}
	if n := s.count(t, `SELECT count(*) FROM accounts WHERE email = 'new-owner@example.com' AND confirmed_at IS NULL`); n != 1 {
		t.Fatal("the GET confirmed the account, or it is missing")
	}
	if res, err := http.Post(s.srv.URL+"/approve/"+m[1], "", nil); err != nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("the token under another action: %v %v", res.StatusCode, err)
	}
	res, err = http.Post(link, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST: %d", res.StatusCode)
	}
	if n := s.count(t, `SELECT count(*) FROM agents g JOIN accounts c ON c.id = g.account_id
		WHERE c.email = 'new-owner@example.com' AND c.confirmed_at IS NOT NULL`); n != 1 {
		t.Fatal("the POST did not give the agent to the confirmed account")
	}
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if id, _ := agent.LoadIdentity(a.Config().Dir); !id.Claimed {
		t.Fatalf("identity: %+v", id)
	}
	if res, _ := http.Post(link, "", nil); res.StatusCode != http.StatusGone {
		t.Fatalf("the link used twice: %d", res.StatusCode)
	}
}

// A stranger's agent that asks for the owner's address is not on the
// owner's account until the owner presses the mail's button.
func TestStrangersAgentNeedsOwnersPost(t *testing.T) {
	s := newAgentSide(t)
	a := emailAgent(t, s.srv.URL, "owner@example.com")
	if err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := s.line(t, "command agents apikey owner-key-0123456789"); r.Data != "-" {
		t.Fatalf("the owner's agents before the POST: %+v", r)
	}
	if n := s.count(t, `SELECT count(*) FROM agents WHERE account_id IS NOT NULL`); n != 0 {
		t.Fatal("claimed without the owner")
	}
	if n := s.count(t, `SELECT count(*) FROM outbox WHERE kind = 'agent_claim' AND to_email = 'owner@example.com'`); n != 1 {
		t.Fatal("no mail to the owner")
	}
}

// A mail's link for an agent that was claimed by code meanwhile changes
// nothing: the agent stays with the account that claimed it.
func TestAgentEmailLinkAfterClaimByCode(t *testing.T) {
	s := newAgentSide(t)
	a := emailAgent(t, s.srv.URL, "late@example.com")
	ctx := context.Background()
	if err := a.Once(ctx); err != nil {
		t.Fatal(err)
	}
	mails := sendMails(t, s.st, s.srv.URL)
	if len(mails) != 1 {
		t.Fatalf("mails: %d", len(mails))
	}
	m := approveLink.FindStringSubmatch(mails[0].Body)
	code, _, err := a.ClaimCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.line(t, "command claim agent "+code+" apikey owner-key-0123456789"); r.Code != lineproto.CodeOK {
		t.Fatalf("claim: %+v", r)
	}
	res, err := http.Post(s.srv.URL+"/agent_approve/"+m[1], "", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusConflict {
		t.Fatalf("POST after the claim by code: %d", res.StatusCode)
	}
	if n := s.count(t, `SELECT count(*) FROM agents g JOIN accounts c ON c.id = g.account_id WHERE c.email = 'owner@example.com'`); n != 1 {
		t.Fatal("the agent left the account that claimed it")
	}
	if n := s.count(t, `SELECT count(*) FROM accounts WHERE email = 'late@example.com' AND confirmed_at IS NOT NULL`); n != 0 {
		t.Fatal("the refused link confirmed its account")
	}
}

// claimEmail posts claim-email with an agent's key.
func claimEmail(t *testing.T, srv *httptest.Server, key, email string) int {
	t.Helper()
	body, _ := json.Marshal(agent.ClaimEmailRequest{Email: email})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+agent.PathClaimEmail, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// registered is the key of a new agent registered (unclaimed) at srv.
func registered(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	a := emailAgent(t, srv.URL, "")
	if err := a.Once(context.Background()); err != nil {
		t.Fatal(err)
	}
	id, err := agent.LoadIdentity(a.Config().Dir)
	if err != nil {
		t.Fatal(err)
	}
	return id.APIKey
}

// run --email is held to the claims' limits: mails per address per day,
// claims per client per hour; a bad address or unknown key is refused.
func TestAgentClaimByEmailLimits(t *testing.T) {
	s := newAgentSide(t)
	srv := httptest.NewServer(New(Deps{Tokens: s.st, Agents: s.st, Log: zerolog.Nop(),
		AgentLimits: AgentLimits{MailsPerDay: 1, ClaimsPerIPHour: 2}}))
	defer srv.Close()
	k1, k2, k3 := registered(t, srv), registered(t, srv), registered(t, srv)
	if c := claimEmail(t, srv, k1, "a@example.com"); c != http.StatusOK {
		t.Fatalf("first: %d", c)
	}
	if c := claimEmail(t, srv, k1, "a@example.com"); c != http.StatusOK {
		t.Fatalf("repeated: %d", c)
	}
	if c := claimEmail(t, srv, k2, "a@example.com"); c != http.StatusTooManyRequests {
		t.Fatalf("second mail to one address in a day: %d", c)
	}
	if c := claimEmail(t, srv, k3, "b@example.com"); c != http.StatusOK {
		t.Fatalf("second claim from one client in an hour: %d", c)
	}
	if c := claimEmail(t, srv, k2, "c@example.com"); c != http.StatusTooManyRequests {
		t.Fatalf("third claim from one client in an hour: %d", c)
	}
	if c := claimEmail(t, srv, k3, "not an address"); c != http.StatusBadRequest {
		t.Fatalf("bad address: %d", c)
	}
	if c := claimEmail(t, srv, "agt-00000000000000000000000000000000deadbeef", "c@example.com"); c != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d", c)
	}
	if n := s.count(t, `SELECT count(*) FROM outbox WHERE kind = 'agent_claim'`); n != 2 {
		t.Fatalf("mails queued: %d", n)
	}
}
