// SPDX-License-Identifier: Apache-2.0

package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/lineproto"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// cert answers what the monitor knows of one domain of a key, on one data
// line (docs/protocol.md):
//
//	state=<ok|warning|critical|pending|wildcard|unknown> expires=<RFC 3339> days=<N>
//	issuer=<CN> addresses=<n> checked=<RFC 3339> finding=<kind,...> class=<class>
//
// A target that has never served a certificate reads unknown, with the
// class of its last failure (say, timeout), never ok.
func (m *Mux) cert(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, d, err := domainArgs(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	s, serr := m.store.CertStatus(ctx, ref, d.Name, d.Port)
	if serr != nil {
		return lineproto.Reply{}, domainError(serr, d)
	}
	return lineproto.Reply{Data: CertLine(s, time.Now()), Code: lineproto.CodeOK,
		Text: fmt.Sprintf("certificate of %s:%d", d.Name, d.Port)}, nil
}

// check asks the monitor to probe one domain of a key within a minute.
func (m *Mux) check(ctx context.Context, req *lineproto.Request) (lineproto.Reply, error) {
	ref, d, err := domainArgs(req)
	if err != nil {
		return lineproto.Reply{}, err
	}
	if serr := m.store.RequestCheck(ctx, ref, d.Name, d.Port, time.Now(), m.cfg.CheckEvery); serr != nil {
		return lineproto.Reply{}, domainError(serr, d)
	}
	if m.cfg.Watch != nil {
		m.cfg.Watch()
	}
	return lineproto.Reply{Code: lineproto.CodeOK, Text: "check queued"}, nil
}

// domainError words the errors about one domain of a key; the others go
// on to wireError.
func domainError(err error, d names.Domain) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return lineproto.Errorf(lineproto.CodeNotFound, "domain %s:%d is not registered for this apikey", d.Name, d.Port)
	case errors.Is(err, store.ErrPending):
		return lineproto.Errorf(lineproto.CodeConflict,
			"domain %s:%d is %s: nothing is probed yet", d.Name, d.Port, pendingWords)
	case errors.Is(err, store.ErrWildcardHost):
		return lineproto.Errorf(lineproto.CodeConflict,
			"a wildcard has no host to probe: check a name it covers")
	}
	return err
}

// CertLine renders a certificate status as the data line of "command
// cert", with "-" for what is not known (class: when no address failed). Days are whole days left at now,
// rounded down (negative once expired). Blanks and "=" in the issuer's
// name become "_", so that the line splits on blanks.
func CertLine(s store.CertStatus, now time.Time) string {
	expires, days, checked := "-", "-", "-"
	if s.Expires != nil {
		expires = s.Expires.UTC().Format(time.RFC3339)
		days = fmt.Sprint(words.DaysLeft(*s.Expires, now))
	}
	if s.Checked != nil {
		checked = s.Checked.UTC().Format(time.RFC3339)
	}
	findings := strings.Join(s.Findings, ",")
	return fmt.Sprintf("state=%s expires=%s days=%s issuer=%s addresses=%d checked=%s finding=%s class=%s",
		s.State, expires, days, orDash(wordSafe(s.IssuerCN)), s.Addresses, checked, orDash(findings), orDash(wordSafe(s.Class)))
}

// wordSafe keeps a value one word: blanks, control characters and "="
// become "_", and it is cut to 64 bytes.
func wordSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r == '=' || r == 0x7f {
			return '_'
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.ToValidUTF8(s, "_")
}
