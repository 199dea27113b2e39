// SPDX-License-Identifier: Apache-2.0

package web

import (
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/store"
)

//go:embed account.html
var accountHTML string

var accountTemplate = template.Must(template.New("account").Parse(accountHTML))

// accountPage serves the page of every certificate of one account.
type accountPage struct {
	pages Accounts
	log   zerolog.Logger
}

func (a accountPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v, err := a.pages.AccountPage(r.Context(), r.PathValue("token"))
	switch {
	case errors.Is(err, store.ErrTokenUnknown):
		render(w, http.StatusNotFound, page{Title: "Unknown link", Message: "This account link is not valid, or it was replaced by a newer one: use the link in your latest KeyChest mail."})
		return
	case err != nil:
		a.log.Warn().Str("code", logcode.DatabaseUnavailable).Time("event_time", time.Now()).Err(err).Msg("account page failed")
		render(w, http.StatusServiceUnavailable, page{Title: "Try again shortly", Message: "KeyChest cannot reach its database right now."})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	accountTemplate.Execute(w, accountModel(v, time.Now()))
}

// accountView is the page's model: everything already worded.
type accountView struct {
	Email, Summary, Now string
	Domains             []domainRow
	Proposals           []proposalRow
	ProposalsTotal      int
	ProposalsNote       string // how many more than shown; "" when all are
	SilentAgents        []silentRow
	LDAPCerts           []ldapRow
	LDAPCertsTotal      int
	LDAPNote            string // how many more than shown; "" when all are
}

// proposalRow is one endpoint an agent discovered: text from the agent
// (name, site, source) cleaned.
type proposalRow struct {
	Target, Site, Source, FirstSeen, Addresses, Gone string
}

type domainRow struct {
	Target, State, Days, Expires, Issuer, Checked, Note string
	Site                                                string // the site a target is behind ("": public)
	BarWidth                                            int    // percent of the lifetime left; 0: no bar
	BarClass                                            string
	Addresses                                           []addressRow
	Findings                                            []findingRow
	History                                             []historyRow
}

type addressRow struct {
	Address, What string
	Stale         bool
}

type findingRow struct{ Kind, Severity, Since, Detail string }

type historyRow struct{ First, Last, Expires, Issuer, Fingerprint string }

// accountModel words an account's domains for the page; the states and
// days are those "command cert" gives.
func accountModel(v store.AccountView, now time.Time) accountView {
	m := accountView{Email: v.Email, Now: words.Stamp(now)}
	problems := 0
	for _, d := range v.Domains {
		m.Domains = append(m.Domains, domainModel(d, now))
		if len(d.Open) > 0 {
			problems++
		}
	}
	m.Summary = words.Count(len(v.Domains), "domain") + ", " + words.Count(problems, "with a problem", "with problems")
	m.Proposals, m.ProposalsNote = proposalsModel(v.Proposals, v.ProposalsTotal)
	m.ProposalsTotal = max(v.ProposalsTotal, len(m.Proposals))
	m.SilentAgents, m.LDAPCerts, m.LDAPNote = agentsModel(v, now)
	m.LDAPCertsTotal = max(v.LDAPCertsTotal, len(m.LDAPCerts))
	return m
}

// maxProposalText is the most of a proposal's name, site or source the
// page shows, in runes.
const maxProposalText = 255

// proposalsModel words the account's open proposals, and says how many
// the page leaves out.
func proposalsModel(ps []store.Discovered, total int) ([]proposalRow, string) {
	rows := make([]proposalRow, 0, len(ps))
	for _, p := range ps {
		r := proposalRow{Target: fmt.Sprintf("%s:%d", words.Clean(p.Name, maxProposalText), p.Port),
			Site: words.Clean(p.Site, maxProposalText), Source: words.Clean(p.Source, maxProposalText),
			FirstSeen: words.Stamp(p.FirstSeen), Addresses: words.Count(p.Addresses, "address", "addresses")}
		if p.Gone != nil {
			r.Gone = "gone since " + words.Stamp(*p.Gone)
		}
		rows = append(rows, r)
	}
	note := ""
	if total > len(ps) {
		note = fmt.Sprintf("Shown: %d of %d; `command discovered` lists them all.", len(ps), total)
	}
	return rows, note
}

// stateNote explains the states that carry no certificate. An unknown
// domain that was probed has never shown one: its last failure is named,
// since no state can be read from it yet.
func stateNote(s store.CertStatus) string {
	switch {
	case s.State == "unknown" && s.Checked != nil:
		return "No certificate seen yet: the last check failed (" + orUnknown(s.Class) + "). The state is unknown until a check sees a certificate."
	case s.State == "unknown":
		return "Not probed yet: the first check follows within a minute."
	case s.State == "pending":
		return "Pending: nothing is watched until the account is confirmed."
	case s.State == "wildcard":
		return "A wildcard has no host to probe; shown is a certificate seen elsewhere that covers it."
	}
	return ""
}

// orUnknown names an empty class: the name did not resolve to an address
// that could be tried.
func orUnknown(class string) string {
	if class == "" {
		return "no address to try"
	}
	return class
}

func domainModel(d store.DomainView, now time.Time) domainRow {
	r := domainRow{Target: fmt.Sprintf("%s:%d", d.Name, d.Port), Site: d.Site, State: d.State, Issuer: d.IssuerCN,
		BarClass: d.State}
	if d.Expires != nil {
		left := d.Expires.Sub(now)
		r.Expires = words.Stamp(*d.Expires)
		if days := words.DaysLeft(*d.Expires, now); days >= 0 {
			r.Days = words.Count(days, "day left", "days left")
		} else {
			r.Days = "expired " + words.Count(-days, "day ago", "days ago")
		}
		if d.NotBefore != nil && left > 0 {
			r.BarWidth = max(1, int(100*left.Seconds()/d.Expires.Sub(*d.NotBefore).Seconds()))
		}
	}
	if d.Checked != nil {
		r.Checked = words.Stamp(*d.Checked)
	}
	r.Note = stateNote(d.CertStatus)
	for _, a := range d.Served {
		what := a.ErrorClass
		if a.NotAfter != nil {
			what = "certificate until " + words.Stamp(*a.NotAfter)
			if a.ErrorClass != "" {
				what += " (" + a.ErrorClass + ")"
			}
		}
		r.Addresses = append(r.Addresses, addressRow{Address: a.Address.String(), What: what, Stale: a.Stale})
	}
	for _, f := range d.Open {
		r.Findings = append(r.Findings, findingRow{Kind: f.Kind, Severity: f.Severity, Since: words.Stamp(f.Opened),
			Detail: words.Clean(f.Detail, words.MaxShown)})
	}
	for _, h := range d.History {
		r.History = append(r.History, historyRow{First: words.Stamp(h.FirstSeen), Last: words.Stamp(h.LastSeen),
			Expires: words.Stamp(h.NotAfter), Issuer: h.IssuerCN, Fingerprint: strings.ToUpper(hex.EncodeToString(h.Fingerprint[:8]))})
	}
	return r
}
