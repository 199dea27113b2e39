// SPDX-License-Identifier: Apache-2.0

package acme

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Port is the port of the targets ACME findings go on, and of the domains
// an issued order adds: the one a certificate for a domain is served on
// unless told otherwise.
const Port = 443

// Account is an ACME account as one proxy sees it, through the events of
// one key (KeyID: the posting key's row, filled in by store).
type Account struct {
	Proxy, Server, ID string
	KeyID             int64
}

// Key is how acme_domains names the account: "" when the event named none.
func (a Account) Key() string {
	if a.ID == "" {
		return ""
	}
	return a.Server + a.ID
}

// Facts is what one event says, read from its params.
type Facts struct {
	Msg, Status, Order, Server string
	At                         time.Time
	Account                    Account
	Names                      []string // DNS names, lowercased, a wildcard's "*." removed, each once
	ProblemType, ProblemDetail string   // the response's problem document
	SubTypes                   []string // the types of its subproblems
	ErrType, ErrDetail         string   // an authorization's or challenge's error
	ChallType                  string
	issued                     []string // a valid order's DNS identifiers, as sent
}

// Read reads an event's params as keychest-amp writes them; an event with
// no time happened at now. It is the one reader of params.
func Read(e Event, now time.Time) Facts {
	var p Params
	json.Unmarshal(e.Params, &p)
	f := Facts{Msg: e.Msg, Status: Val(p.Status), Order: Val(p.Order), Server: p.Server, At: e.Time, ChallType: Val(p.Type),
		Account: Account{Proxy: e.Proxy, Server: p.Server, ID: Val(p.Account)}}
	if f.At.IsZero() {
		f.At = now
	}
	ids := append(identifiers(p.Domains), identifiers(p.Identifiers)...)
	ids = append(ids, identifiers1(p.Identifier)...)
	if p.Problem != nil {
		f.ProblemType, f.ProblemDetail = p.Problem.Type, p.Problem.Detail
		if p.Problem.Subproblems != nil {
			for _, s := range *p.Problem.Subproblems {
				ids = append(ids, identifiers1(s.Identifier)...)
				f.SubTypes = append(f.SubTypes, s.Type)
			}
		}
	}
	if p.Error != nil {
		f.ErrType, f.ErrDetail = p.Error.Type, p.Error.Detail
	}
	f.Names = dnsNames(ids)
	if f.IsOrder() {
		f.issued = issued(e.Params)
	}
	return f
}

// issued reads the DNS identifiers of an order that is valid: none when
// the order's status or identifiers are not what RFC 8555 says they are.
func issued(params json.RawMessage) []string {
	var p struct {
		Status               string
		Identifiers, Domains []Identifier
	}
	if json.Unmarshal(params, &p) != nil || p.Status != "valid" {
		return nil
	}
	var out []string
	for _, id := range append(p.Identifiers, p.Domains...) {
		if id.Type == "dns" {
			out = append(out, id.Value)
		}
	}
	return out
}

// identifiers reads a list of identifiers (anything else: none).
func identifiers(raw json.RawMessage) []Identifier {
	var out []Identifier
	json.Unmarshal(raw, &out)
	return out
}

// identifiers1 reads one identifier (anything else: none).
func identifiers1(raw json.RawMessage) []Identifier {
	var id *Identifier
	if json.Unmarshal(raw, &id) != nil || id == nil {
		return nil
	}
	return []Identifier{*id}
}

// dnsNames are the DNS names among ids, lowercased, a wildcard's "*."
// and a trailing dot removed, each once, in order.
func dnsNames(ids []Identifier) []string {
	var out []string
	seen := map[string]bool{}
	for _, id := range ids {
		name := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(id.Value), "*."), ".")
		if id.Type == "dns" && HostName(name) && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// Issued are the DNS identifiers of an order that reached valid, as the
// CA listed them (RFC 8555 section 9.7.7: a bare domain name; one with a
// port, scheme or path is left out, since it is not a name a CA issued
// for and would register another port). None for any other event.
func (f Facts) Issued() []string {
	var out []string
	for _, v := range f.issued {
		if !strings.ContainsAny(v, ":/") {
			out = append(out, v)
		}
	}
	return out
}

// Rows is what the event costs of its key's hourly budget: its own row,
// and one per DNS name it gives.
func (f Facts) Rows() int { return 1 + len(f.Names) }

// IsOrder says whether the event is about an order.
func (f Facts) IsOrder() bool {
	return f.Msg == "new-order" || f.Msg == "order" || f.Msg == "final"
}

// ProblemIs says whether the response was an ACME problem of this type,
// or had a subproblem of it.
func (f Facts) ProblemIs(short string) bool {
	for _, t := range append([]string{f.ProblemType}, f.SubTypes...) {
		if strings.HasSuffix(t, ":"+short) {
			return true
		}
	}
	return false
}

// Failed says whether the event counts as a failure of its account.
func (f Facts) Failed() bool {
	return f.ProblemType != "" || f.Msg == "auth" && f.Status == "invalid"
}

// Failure is the error an event reports, "" when none.
func (f Facts) Failure() string {
	switch {
	case f.ProblemType != "":
		return shortProblem(f.ProblemType) + ": " + f.ProblemDetail
	case f.ErrType != "" || f.ErrDetail != "":
		return shortProblem(f.ErrType) + ": " + f.ErrDetail
	case f.Status == "invalid":
		return f.Msg + " invalid"
	}
	return ""
}

// OrderStatus is the status acme_domains records for an event: an order
// that failed without a status is "error".
func (f Facts) OrderStatus() string {
	if f.IsOrder() && f.Status == "" && f.ProblemType != "" {
		return "error"
	}
	return f.Status
}

// shortProblem drops the ACME URN prefix of a problem type.
func shortProblem(t string) string {
	return strings.TrimPrefix(t, "urn:ietf:params:acme:error:")
}

// HostName says whether s looks like a DNS name worth a target: letters,
// digits, hyphens and underscores in dot-separated labels.
func HostName(s string) bool {
	if s == "" || len(s) > 253 || strings.HasPrefix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == ""
}

// ParseLine reads one journal line of a report: proxy, a positive id,
// msg and a params object are required; params and the line are kept as
// sent. A time that is not the seed's leaves the event's time zero.
func ParseLine(line []byte) (Event, error) {
	var env struct {
		Envelope
		Params json.RawMessage `json:"params"` // as sent, stored whole
	}
	if err := json.Unmarshal(line, &env); err != nil {
		return Event{}, fmt.Errorf("not JSON: %v", err)
	}
	if env.Proxy == "" || len(env.Proxy) > 254 || env.ID <= 0 || env.Msg == "" || len(env.Msg) > 32 ||
		len(env.Params) == 0 || env.Params[0] != '{' {
		return Event{}, errors.New("proxy, a positive id, msg and a params object are required")
	}
	// PostgreSQL's jsonb refuses the escaped NUL character, so a line that
	// carries one could never be stored: it is refused here, as bad input.
	if bytes.Contains(line, []byte(`\u0000`)) {
		return Event{}, errors.New(`a NUL character (\u0000) cannot be stored`)
	}
	t, _ := time.Parse(TimeFormat, env.Time)
	return Event{Proxy: env.Proxy, ID: env.ID, Msg: env.Msg, Time: t, Params: env.Params,
		Envelope: bytes.Clone(line)}, nil
}
