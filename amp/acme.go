// SPDX-License-Identifier: Apache-2.0

package amp

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keychest/keychest-lined/acme"
)

// Exchange is one intercepted request and its response.
type Exchange struct {
	Time        time.Time
	Client      string // the client's IP
	Server      string // host:port of the ACME server
	Method, URL string // URL is absolute
	Agent       string
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte // uncompressed
}

// Event is one ACME message understood, in the seed's terms.
type Event struct {
	Msg    string
	Time   time.Time
	Params acme.Params
}

// Kinds of URL the tracker learns. The directory's names are ACME's.
const (
	kindNonce    = "newNonce"
	kindAccount  = "newAccount"
	kindOrder    = "newOrder"
	kindRevoke   = "revokeCert"
	kindKey      = "keyChange"
	kindAcct     = "account"
	kindOrderURL = "order"
	kindAuthz    = "authz"
	kindChall    = "chall"
	kindFinalize = "finalize"
	kindCert     = "certificate"
)

// msgOf maps a URL's kind to the seed's message type.
var msgOf = map[string]string{
	kindNonce: "new-nonce", kindAccount: "new-acct", kindOrder: "new-order", kindRevoke: "revoke-cert",
	kindKey: "key-change", kindOrderURL: "order", kindAuthz: "auth", kindChall: "chall", kindFinalize: "final",
}

// Tracker understands ACME exchanges: it learns URLs from the directories
// clients fetch and from the servers' responses, and classifies each
// request by what it learned, never by a path it assumes. It keeps at most
// max URLs, forgetting the oldest.
type Tracker struct {
	// DefaultEmail is new-acct's email when the account has no mailto contact.
	DefaultEmail string

	mu     sync.Mutex
	kinds  map[string]string
	fifo   []string
	max    int
	challs map[string]string // last status seen per challenge URL
}

// NewTracker returns a tracker that remembers up to max URLs.
func NewTracker(max int) *Tracker {
	return &Tracker{kinds: map[string]string{}, max: max, challs: map[string]string{}}
}

// Observe returns the events of one exchange: none, or one, and for an
// authorization also a chall event for each challenge it shows reaching
// valid or invalid (clients poll the authorization, not the challenge).
func (t *Tracker) Observe(x Exchange) []Event {
	resp := jsonObject(x.Header, x.Body)
	t.mu.Lock()
	defer t.mu.Unlock()
	kind := t.kinds[urlKey(x.URL)]
	if kind == "" {
		kind = shapeKind(x, resp)
	}
	if kind == "" || kind == kindAcct || kind == kindCert {
		return nil // account updates and certificate downloads: not among the seed's messages
	}
	jws, _ := DecodeJWS(x.RequestBody)
	var payload map[string]any
	if jws != nil && len(jws.Payload) > 0 {
		json.Unmarshal(jws.Payload, &payload)
	}
	params := baseParams(x)
	msg := "directory"
	if kind != "directory" {
		msg = msgOf[kind]
		params.Account = acme.Str(pathOf(kid(jws)))
	}
	t.describe(kind, x, resp, payload, &params)
	params.Problem = problemOf(x.Header, resp)
	events := []Event{{Msg: msg, Time: x.Time, Params: params}}
	if kind == kindAuthz {
		events = append(events, t.settledChallenges(x, resp, params.Account)...)
	}
	return events
}

// settledChallenges returns a chall event for each challenge of an
// authorization that is valid or invalid and was not seen so before.
func (t *Tracker) settledChallenges(x Exchange, authz map[string]any, account *string) []Event {
	var out []Event
	chs, _ := authz["challenges"].([]any)
	for _, c := range chs {
		m, _ := c.(map[string]any)
		st := str(m, "status")
		if (st != "valid" && st != "invalid") || !t.challStatus(str(m, "url"), st) {
			continue
		}
		params := baseParams(x)
		params.Account, params.Chall, params.Status, params.Type = account, acme.Str(pathOf(str(m, "url"))), acme.Str(st), acme.Str(str(m, "type"))
		params.Via, params.Identifier = acme.Str("authz"), orEmpty(authz["identifier"])
		if e, ok := m["error"].(map[string]any); ok {
			params.Error = problemFields(e)
		}
		out = append(out, Event{Msg: "chall", Time: x.Time, Params: params})
	}
	return out
}

// challStatus records a challenge's status and says whether it changed.
func (t *Tracker) challStatus(u, status string) bool {
	k := urlKey(u)
	if k == "" || t.challs[k] == status {
		return false
	}
	if len(t.challs) >= t.max {
		clear(t.challs)
	}
	t.challs[k] = status
	return true
}

// describe fills params for the kind and learns the URLs the response names.
func (t *Tracker) describe(kind string, x Exchange, resp, payload map[string]any, params *acme.Params) {
	location := x.Header.Get("Location")
	switch kind {
	case "directory":
		for _, k := range []string{kindNonce, kindAccount, kindOrder, kindRevoke, kindKey} {
			t.learn(str(resp, k), k)
		}
		params.Account = nil
	case kindNonce:
		params.Account = nil
	case kindAccount:
		t.learn(location, kindAcct)
		contact := list(payload, "contact")
		if len(contact) == 0 {
			contact = list(resp, "contact")
		}
		params.Contact, params.Email = contact, acme.Str(t.email(contact))
		params.Account, params.Source, params.Status = acme.Str(pathOf(location)), acme.Str(str(resp, "initialIp")), acme.Str(str(resp, "status"))
	case kindOrder:
		t.learn(location, kindOrderURL)
		t.learnOrder(resp)
		ids := resp["identifiers"]
		if ids == nil {
			ids = payload["identifiers"]
		}
		params.Domains, params.Order = orEmpty(ids), acme.Str(pathOf(location))
		params.Authz, params.Finalize, params.Status = paths(list(resp, "authorizations")), acme.Str(pathOf(str(resp, "finalize"))), acme.Str(str(resp, "status"))
	case kindAuthz:
		t.learnAuthz(resp)
		params.Authz, params.Status, params.Expires = pathOf(x.URL), acme.Str(str(resp, "status")), acme.Str(str(resp, "expires"))
		params.Identifier = orEmpty(resp["identifier"])
		params.Error = challengeError(resp)
	case kindChall:
		t.challStatus(x.URL, str(resp, "status"))
		params.Chall, params.Status, params.Type = acme.Str(pathOf(x.URL)), acme.Str(str(resp, "status")), acme.Str(str(resp, "type"))
		if e, ok := resp["error"].(map[string]any); ok {
			params.Error = problemFields(e)
		}
	case kindOrderURL, kindFinalize:
		t.learnOrder(resp)
		params.Status, params.Certificate = acme.Str(str(resp, "status")), acme.Str(pathOf(str(resp, "certificate")))
		params.Identifiers = orEmpty(resp["identifiers"])
		if kind == kindOrderURL {
			params.Order, params.Chall = acme.Str(pathOf(x.URL)), acme.Str(pathOf(x.URL))
			params.Finalize = acme.Str(pathOf(str(resp, "finalize")))
		} else {
			params.Order = acme.Str(pathOf(location))
		}
	}
}

func (t *Tracker) learnOrder(resp map[string]any) {
	for _, a := range list(resp, "authorizations") {
		t.learn(a, kindAuthz)
	}
	t.learn(str(resp, "finalize"), kindFinalize)
	t.learn(str(resp, "certificate"), kindCert)
}

func (t *Tracker) learnAuthz(resp map[string]any) {
	chs, _ := resp["challenges"].([]any)
	for _, c := range chs {
		if m, ok := c.(map[string]any); ok {
			t.learn(str(m, "url"), kindChall)
		}
	}
}

// learn records the kind of an absolute URL.
func (t *Tracker) learn(u, kind string) {
	if u == "" {
		return
	}
	k := urlKey(u)
	if k == "" {
		return
	}
	if _, ok := t.kinds[k]; !ok {
		t.fifo = append(t.fifo, k)
		if len(t.fifo) > t.max {
			delete(t.kinds, t.fifo[0])
			t.fifo = t.fifo[1:]
		}
	}
	t.kinds[k] = kind
}

func (t *Tracker) email(contact []string) string {
	for _, c := range contact {
		if e, ok := strings.CutPrefix(c, "mailto:"); ok {
			return e
		}
	}
	return t.DefaultEmail
}

// shapeKind classifies a response the tracker has no URL for (the proxy
// restarted between a client's directory fetch and its later requests) by
// its shape, as RFC 8555 defines the objects.
func shapeKind(x Exchange, resp map[string]any) string {
	switch {
	case x.Method == http.MethodGet && resp["newNonce"] != nil && resp["newAccount"] != nil:
		return "directory"
	case resp["identifiers"] != nil && resp["finalize"] != nil:
		return kindOrderURL
	case resp["identifier"] != nil && resp["challenges"] != nil:
		return kindAuthz
	case resp["token"] != nil && resp["type"] != nil && resp["url"] != nil:
		return kindChall
	}
	return ""
}

func baseParams(x Exchange) acme.Params {
	return acme.Params{Epoch: x.Time.Unix(), Client: x.Client, Server: strings.TrimSuffix(x.Server, ":443"),
		Agent: x.Agent, Code: x.Status}
}

// urlKey is an absolute URL without its scheme, default port or query, host lowercased.
func urlKey(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(u.Host), ":443") + u.EscapedPath()
}

func pathOf(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.EscapedPath()
}

func paths(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, u := range urls {
		out = append(out, pathOf(u))
	}
	return out
}

func kid(j *JWS) string {
	if j == nil {
		return ""
	}
	return j.Protected.KID
}

func jsonObject(h http.Header, body []byte) map[string]any {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if !strings.HasSuffix(mt, "json") {
		return map[string]any{}
	}
	var m map[string]any
	if json.Unmarshal(body, &m) != nil || m == nil {
		return map[string]any{}
	}
	return m
}

// problemOf returns the problem document of an error response.
func problemOf(h http.Header, resp map[string]any) *acme.Problem {
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if mt != "application/problem+json" {
		return nil
	}
	return problemFields(resp)
}

// problemFields keeps a problem's type, detail and subproblems.
func problemFields(p map[string]any) *acme.Problem {
	out := &acme.Problem{Type: str(p, "type"), Detail: str(p, "detail")}
	if subs, ok := p["subproblems"].([]any); ok {
		var list []acme.Problem
		for _, s := range subs {
			if m, ok := s.(map[string]any); ok {
				sp := problemFields(m)
				if id, ok := m["identifier"]; ok {
					sp.Identifier = asJSON(id)
				}
				list = append(list, *sp)
			}
		}
		out.Subproblems = &list
	}
	return out
}

// challengeError returns the error of the first failed challenge of an authz.
func challengeError(authz map[string]any) *acme.Problem {
	chs, _ := authz["challenges"].([]any)
	for _, c := range chs {
		if m, ok := c.(map[string]any); ok {
			if e, ok := m["error"].(map[string]any); ok {
				return problemFields(e)
			}
		}
	}
	return nil
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func list(m map[string]any, k string) []string {
	items, _ := m[k].([]any)
	out := []string{}
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// orEmpty is a value the CA sent, as JSON; an empty list when it sent none.
func orEmpty(v any) json.RawMessage {
	if v == nil {
		return json.RawMessage(`[]`)
	}
	return asJSON(v)
}

// asJSON is a value the CA sent, decoded, as JSON again.
func asJSON(v any) json.RawMessage {
	raw, _ := json.Marshal(v)
	return raw
}
