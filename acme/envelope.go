// SPDX-License-Identifier: Apache-2.0

package acme

import (
	"encoding/json"
	"time"
)

// TimeFormat is the seed's format of an envelope's time and log_time (UTC).
const TimeFormat = "2006-01-02 15:04:05"

// Envelope is one line of keychest-amp's journal, as the seed defines it:
// keychest-amp writes it, keychest-lined reads it from a report.
type Envelope struct {
	Msg     string `json:"msg"`
	Params  Params `json:"params"`
	Time    string `json:"time"`
	Proxy   string `json:"proxy"`
	ID      int64  `json:"id"`
	Host    string `json:"host"`
	IP      string `json:"ip"`
	Version string `json:"version"`
	Backlog int    `json:"backlog"`
	LogTime string `json:"log_time"`
}

// Params are an envelope's params: every message has the first five, the
// others only the message types docs/amp.md names (a nil pointer is a
// param the message does not carry). Fields are in the order of their
// names, as the journal has always written them. Values a CA sent
// (identifiers) are kept as its JSON.
type Params struct {
	Account     *string         `json:"account,omitempty"`
	Agent       string          `json:"agent"`
	Authz       any             `json:"authz,omitempty"` // a path (auth), or a list of paths (new-order)
	Certificate *string         `json:"certificate,omitempty"`
	Chall       *string         `json:"chall,omitempty"`
	Client      string          `json:"client"`
	Code        int             `json:"code"`
	Contact     []string        `json:"contact,omitzero"`
	Domains     json.RawMessage `json:"domains,omitempty"` // new-order's identifiers
	Email       *string         `json:"email,omitempty"`
	Epoch       int64           `json:"epoch"`
	Error       *Problem        `json:"error,omitempty"` // a failed challenge's error
	Expires     *string         `json:"expires,omitempty"`
	Finalize    *string         `json:"finalize,omitempty"`
	Identifier  json.RawMessage `json:"identifier,omitempty"`
	Identifiers json.RawMessage `json:"identifiers,omitempty"`
	Order       *string         `json:"order,omitempty"`
	Problem     *Problem        `json:"problem,omitempty"` // the response's problem document
	Server      string          `json:"server"`
	Source      *string         `json:"source,omitempty"`
	Status      *string         `json:"status,omitempty"`
	Type        *string         `json:"type,omitempty"` // a challenge's type
	Via         *string         `json:"via,omitempty"`
}

// Problem is an ACME problem document (RFC 8555 section 6.7) as the
// journal keeps it.
type Problem struct {
	Detail      string          `json:"detail"`
	Identifier  json.RawMessage `json:"identifier,omitempty"` // a subproblem's
	Subproblems *[]Problem      `json:"subproblems,omitempty"`
	Type        string          `json:"type"`
}

// Identifier is an ACME identifier: its type ("dns", "ip") and value.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Str points at s, for a param that is set.
func Str(s string) *string { return &s }

// Val is the value of a param, "" when it is not set.
func Val(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// Event is one journal line as keychest-lined reads it from a report.
type Event struct {
	Proxy    string          // the proxy's identity
	ID       int64           // its order number at that proxy
	Msg      string          // the seed's message type
	Time     time.Time       // when it happened; zero when unknown
	Params   json.RawMessage // the message's params object, as sent
	Envelope json.RawMessage // the whole line, as sent
}
