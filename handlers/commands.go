// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// helpText lists the verbs on one data line.
const helpText = "apikey | claim apikey K email E | add domain D apikey K | remove domain D apikey K | " +
	"status apikey K | list apikey K | cert domain D apikey K | check domain D apikey K | " +
	"claim agent CODE apikey K | agents apikey K | add domain D apikey K site S | ping | version | help | quit"

// apikey issues a new random key and stores its hash.
func (m *Mux) apikey(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	key := names.NewAPIKey()
	ref := names.HashAPIKey(key)
	req.Subject = ref.Prefix
	if err := m.store.CreateKey(ctx, store.NewKey{Key: ref, IP: req.Remote, MaxPerIPHour: m.cfg.KeysPerIPHour}); err != nil {
		return lineproto.Reply{}, limited(err, "too many new keys from %s; retry in %s")
	}
	return lineproto.Reply{Data: key, Code: lineproto.CodeOK, Text: "new api key"}, nil
}

// claim binds a key to the account of an email address and queues the
// confirmation (or "new key") mail. Its reply has the same words whether
// the address had no account, an unconfirmed one or a confirmed one
// (whose key then waits for the owner's approval): a claim is no way to
// learn whether an address has an account.
func (m *Mux) claim(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, email, err := claimArgs(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	out, serr := m.store.ClaimKey(ctx, store.Claim{Key: ref, Email: email, IP: req.Remote,
		Tokens:       store.MailTokens{Confirm: names.NewToken(), Block: names.NewToken(), Revoke: names.NewToken(), Approve: names.NewToken()},
		MaxPerIPHour: m.cfg.ClaimsPerIPHour, MaxMailsPerDay: m.cfg.MailsPerDay, MaxUnconfirmedKeys: m.cfg.MaxUnconfirmedKeys})
	if serr != nil {
		return lineproto.Reply{}, limited(serr, "too many claims from %s; retry in %s")
	}
	if out != store.ClaimUnchanged && m.cfg.MailQueued != nil {
		m.cfg.MailQueued()
	}
	text := "claimed for " + email + "; its domains stay " + pendingWords
	if out == store.ClaimUnchanged {
		text = "already claimed by " + email
	}
	return lineproto.Reply{Code: lineproto.CodeOK, Text: text}, nil
}

// pendingWords say why a key's domains are not watched yet. They are the
// same for a key of a new or unconfirmed account and for one waiting for
// approval on a confirmed account, so that no reply tells the two apart.
const pendingWords = "pending until the owner confirms by mail"

// keyArg checks the request's apikey, and names the key's prefix as the
// request's subject in its log entry.
func keyArg(req *lineproto.Request) (store.KeyRef, *lineproto.Error) {
	raw, _ := req.Get("apikey")
	ref, err := parseAPIKey(raw)
	req.Subject = ref.Prefix
	return ref, err
}

func claimArgs(req *lineproto.Request) (store.KeyRef, string, *lineproto.Error) {
	ref, err := keyArg(req)
	if err != nil {
		return ref, "", err
	}
	rawEmail, _ := req.Get("email")
	email, err := parseEmail(rawEmail)
	return ref, email, err
}

// add records a domain to watch for a known key.
func (m *Mux) add(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, d, err := m.addArgs(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	res, serr := m.store.AddDomain(ctx, m.newDomain(req, ref, d))
	return m.added(d, res, serr)
}

// startAdd begins an add without blocking, when the store can (see
// Start); done hears the reply once the add's batch committed, on the
// store's group-commit writer.
func (m *Mux) startAdd(ctx context.Context, req *lineproto.Request, done func(lineproto.Reply)) bool {
	if m.starter == nil {
		return false
	}
	ref, d, err := m.addArgs(req)
	if err != nil {
		return false // a worker answers it, with the same error
	}
	return m.starter.StartAddDomain(ctx, m.newDomain(req, ref, d), func(res store.AddResult, serr error) {
		done(m.addedSafely(req, d, res, serr))
	})
}

// addedSafely is the wire reply to an add that the store answered, for an
// add Start began. It runs on the store's writer, where a panic would stop
// every write: one is logged and becomes this command's 500.
func (m *Mux) addedSafely(req *lineproto.Request, d names.Domain, res store.AddResult, serr error) (reply lineproto.Reply) {
	defer func() {
		if v := recover(); v != nil {
			reply = lineproto.Recovered(m.log, req, v)
		}
	}()
	reply, err := m.added(d, res, serr)
	if err != nil {
		reply = lineproto.Fail(m.wireError(req, err))
	}
	return reply
}

// newDomain is the add that req asks for.
func (m *Mux) newDomain(req *lineproto.Request, ref store.KeyRef, d names.Domain) store.NewDomain {
	return store.NewDomain{Key: ref, Name: d.Name, Port: d.Port,
		Wildcard: d.Wildcard, IP: req.Remote, MaxPerKey: m.cfg.MaxDomainsPerKey}
}

// added is the reply to an add of d that the store answered with res or serr.
func (m *Mux) added(d names.Domain, res store.AddResult, serr error) (lineproto.Reply, error) {
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	text := fmt.Sprintf("domain %s:%d added", d.Name, d.Port)
	if res.Outcome == store.DomainExists {
		text = fmt.Sprintf("domain %s:%d already registered", d.Name, d.Port)
	}
	if !res.Active {
		text += " (" + pendingWords + ")"
	} else if res.Outcome == store.DomainAdded && m.cfg.Watch != nil {
		m.cfg.Watch()
	}
	return lineproto.Reply{Code: lineproto.CodeOK, Text: text}, nil
}

// remove deletes a domain of a key.
func (m *Mux) remove(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, d, err := domainArgs(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	removed, serr := m.store.RemoveDomain(ctx, store.DomainRef{Key: ref, Name: d.Name, Port: d.Port, IP: req.Remote})
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	if !removed {
		return lineproto.Reply{}, lineproto.Errorf(lineproto.CodeNotFound,
			"domain %s:%d is not registered for this apikey", d.Name, d.Port)
	}
	return lineproto.Reply{Code: lineproto.CodeOK, Text: fmt.Sprintf("domain %s:%d removed", d.Name, d.Port)}, nil
}

func domainArgs(req *lineproto.Request) (store.KeyRef, names.Domain, *lineproto.Error) {
	ref, err := keyArg(req)
	if err != nil {
		return ref, names.Domain{}, err
	}
	rawDomain, _ := req.Get("domain")
	d, err := parseDomain(rawDomain)
	return ref, d, err
}

// addArgs is domainArgs for an add, which also needs a port the monitor
// may watch. Remove, cert and check take any port, so that a domain added
// under an older list can still be read and removed.
func (m *Mux) addArgs(req *lineproto.Request) (store.KeyRef, names.Domain, *lineproto.Error) {
	ref, d, err := domainArgs(req)
	if err == nil {
		err = watchable(d, m.cfg.MonitorPorts)
	}
	return ref, d, err
}

// status answers one data line of key=value pairs about a key.
func (m *Mux) status(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, err := keyArg(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	st, serr := m.store.KeyStatus(ctx, ref)
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	data := fmt.Sprintf("key=%s claimed=%s email=%s confirmed=%s blocked=%s revoked=%s domains=%d created=%s problems=%d",
		st.Prefix, yesNo(st.Email != ""), orDash(st.Email), yesNo(st.Confirmed), yesNo(st.Blocked),
		yesNo(st.Revoked), st.Domains, st.CreatedAt.UTC().Format(time.RFC3339), st.Problems)
	return lineproto.Reply{Data: data, Code: lineproto.CodeOK, Text: "key status"}, nil
}

// listBudget is what the data line of "list" may use: the reply must stay
// under 1000 bytes with its status line.
const listBudget = 900

// dataLine joins items with sep on one data line of at most budget bytes:
// the items that fit, then "(+N more)" for those left out; "-" for none.
// The seed's client reads a reply in one read of 1000 bytes.
func dataLine(items []string, sep string, budget int) string {
	var b strings.Builder
	shown := 0
	for _, item := range items {
		if b.Len()+len(sep)+len(item) > budget-len(sep+"(+00000 more)") {
			break
		}
		if shown > 0 {
			b.WriteString(sep)
		}
		b.WriteString(item)
		shown++
	}
	if left := len(items) - shown; left > 0 {
		fmt.Fprintf(&b, "%s(+%d more)", sep, left)
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// list answers a key's domains on one data line, cut to fit, with a count
// of what was left out.
func (m *Mux) list(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, err := keyArg(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	domains, serr := m.store.KeyDomains(ctx, ref)
	if serr != nil {
		return lineproto.Reply{}, serr
	}
	items := make([]string, len(domains))
	for i, d := range domains {
		items[i] = fmt.Sprintf("%s:%d", d.Name, d.Port)
		if d.Site != "" {
			items[i] += "@" + d.Site // behind that site
		}
	}
	data := dataLine(items, " ", listBudget)
	return lineproto.Reply{Data: data, Code: lineproto.CodeOK,
		Text: words.Count(len(domains), "domain")}, nil
}

func (m *Mux) ping(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return lineproto.OK("pong"), nil
}

func (m *Mux) version(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return lineproto.Reply{Data: "keychest-lined " + m.cfg.Version, Code: lineproto.CodeOK, Text: "version"}, nil
}

func (m *Mux) help(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return lineproto.Reply{Data: helpText, Code: lineproto.CodeOK, Text: "one command per line: name value pairs in any order"}, nil
}

func (m *Mux) quit(context.Context, *lineproto.Request) (lineproto.Reply, error) {
	return lineproto.Bye("bye"), nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
