// SPDX-License-Identifier: Apache-2.0

package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/keychest/keychest-lined/internal/atomicfile"
	"github.com/keychest/keychest-lined/internal/logcode"
)

// ClaimMailFile is the name, in DIR, of the record of the agent's claim
// mail requests (--email): which agent asked, for which address, how many
// mails were queued, and when last.
const ClaimMailFile = "claim-mail.json"

// ClaimMailEvery is how long the agent waits between two requests of a
// claim mail to one address: the approve link's lifetime on the server
// (store.TokenLifetime, 7 days) and an hour for the two clocks' skew, so
// that it asks again only once the link it asked for has expired (a test
// in package web checks it against store.TokenLifetime).
const ClaimMailEvery = 7*24*time.Hour + time.Hour

// MaxClaimMails is how many claim mails the agent asks for one address:
// after that many links expired unanswered it stops asking (a new
// --email, removing DIR/claim-mail.json, or a claim code start anew).
const MaxClaimMails = 3

// claimMailState is DIR/claim-mail.json.
type claimMailState struct {
	Agent string    `json:"agent"` // the agent's id: a new identity starts anew
	Email string    `json:"email"`
	Asks  int       `json:"asks"`
	Last  time.Time `json:"last"`
}

// due says whether agent may ask for a claim mail to email at now; held
// says it may not because MaxClaimMails links expired unanswered.
func (s claimMailState) due(agent, email string, now time.Time) (due, held bool) {
	switch {
	case s.Agent != agent || s.Email != email || s.Asks == 0:
		return true, false
	case now.Sub(s.Last) < ClaimMailEvery:
		return false, false
	case s.Asks >= MaxClaimMails:
		return false, true
	}
	return true, false
}

// loadClaimMail reads DIR/claim-mail.json (none, or unreadable: nothing
// asked yet).
func loadClaimMail(dir string) claimMailState {
	var s claimMailState
	raw, err := os.ReadFile(filepath.Join(dir, ClaimMailFile))
	if err == nil && json.Unmarshal(raw, &s) != nil {
		s = claimMailState{}
	}
	return s
}

// saveClaimMail writes DIR/claim-mail.json, mode 0600, atomically.
func saveClaimMail(dir string, s claimMailState) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, ClaimMailFile), append(raw, '\n'), fileMode)
}

// askClaimMail asks the server, only while unclaimed, to mail --email the
// link that claims this agent: once per link lifetime (ClaimMailEvery)
// across runs, as "once" from cron starts a new process each time, and
// at most MaxClaimMails times per address. The server itself sends no
// second mail while a link is live: an answer that it queued none is not
// counted, and the agent asks again on its next run. A refusal (a limit,
// a bad address) is logged, not counted, and leaves the agent running.
func (a *Agent) askClaimMail(ctx context.Context, id Identity) {
	if a.cfg.Email == "" {
		return
	}
	st := loadClaimMail(a.cfg.Dir)
	now := time.Now().UTC()
	due, held := st.due(id.ID, a.cfg.Email, now)
	if held && !a.emailHeld.Swap(true) {
		a.event(a.Log.Warn(), logcode.AgentClaimMailHeld).Str("id", id.ID).Str("email", a.cfg.Email).Int("asks", st.Asks).
			Msg("claim by e-mail not asked again: its links expired unanswered; use claim-code, another --email, or remove DIR/" + ClaimMailFile)
	}
	if !due {
		return
	}
	var ans ClaimEmailReply
	if err := a.client.postJSON(ctx, PathClaimEmail, ClaimEmailRequest{Email: a.cfg.Email}, &ans); err != nil {
		a.event(a.Log.Warn(), logcode.AgentClaimMailRefused).Str("id", id.ID).Err(err).Msg("claim by e-mail refused")
		return
	}
	if st.Agent != id.ID || st.Email != a.cfg.Email {
		st = claimMailState{Agent: id.ID, Email: a.cfg.Email}
	}
	if ans.Queued {
		st.Asks, st.Last = st.Asks+1, now
		if err := saveClaimMail(a.cfg.Dir, st); err != nil {
			a.event(a.Log.Warn(), logcode.AgentClaimMailRefused).Str("id", id.ID).Err(err).Msg("claim mail asked, but not recorded")
		}
	}
	a.event(a.Log.Info(), logcode.AgentClaimMail).Str("id", id.ID).Str("email", a.cfg.Email).Bool("queued", ans.Queued).
		Int("asks", st.Asks).Msg("claim by e-mail asked: the owner approves it from the mail")
}
