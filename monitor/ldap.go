// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/logcode"
	"github.com/keychest/keychest-lined/store"
)

// ldapEvery is how often the certificates read from LDAP stores are
// looked at for a due judge.
const ldapEvery = time.Minute

// ldapPokeFloor is the least time between two judges that pokes bring
// about: an agent posting again and again (or alternating two sets of
// certificates) has the monitor judge at most once in it, so that the
// probes never wait on the LDAP rows more than that; a poke within it is
// kept and served once it passed.
const ldapPokeFloor = 10 * time.Second

// JudgeLDAPCert judges at now the expiry of a certificate read from an
// LDAP store, on its own row, with the policy's thresholds: an expiry
// finding opens (or rises) once it is in its warning or critical window
// or expired, at once (the dates are facts, not a blip), and closes once
// the certificate is gone from its store or renewed there. It does no
// I/O.
func (p Policy) JudgeLDAPCert(w store.LDAPCertWatch, now time.Time) finding.Verdict {
	v := finding.Verdict{TargetID: w.Target.ID, StartedAt: now, CheckedAt: now, State: StateOK}
	sev := ""
	if !w.Gone && !w.Renewed {
		sev = p.ExpirySeverity(w.NotBefore, w.NotAfter, now)
	}
	open, isOpen := w.Target.Open[finding.KindExpiry]
	f := finding.Finding{Kind: finding.KindExpiry, Severity: sev,
		Detail: fmt.Sprintf("expires %s (%s lifetime): %q issued by %q",
			w.NotAfter.UTC().Format(time.RFC3339), roundDays(w.NotAfter.Sub(w.NotBefore)), w.Subject, w.Issuer)}
	switch {
	case sev != "" && !isOpen:
		v.Open = []finding.Finding{f}
	case sev != "" && open.Severity != sev:
		v.Change = []finding.Finding{f}
	case sev == "" && isOpen:
		v.Close = []string{finding.KindExpiry}
	}
	if sev != "" {
		v.State = stateOf(map[string]string{finding.KindExpiry: sev})
	}
	v.NextDue = p.ldapNextDue(w, sev, now)
	return v
}

// ldapNextDue is when a certificate is judged again: after the policy's
// interval (its open interval while in a window), and never after it
// enters its next window.
func (p Policy) ldapNextDue(w store.LDAPCertWatch, sev string, now time.Time) time.Time {
	wait := p.Interval
	if sev != "" {
		wait = p.OpenInterval
	}
	if !w.Gone && !w.Renewed {
		warn, crit := p.Window(w.NotBefore, w.NotAfter)
		for _, edge := range []time.Time{w.NotAfter.Add(-warn), w.NotAfter.Add(-crit), w.NotAfter} {
			if d := edge.Sub(now); d > 0 && d < wait {
				wait = max(d, time.Second)
			}
		}
	}
	return now.Add(max(wait, time.Minute))
}

// roundDays says a lifetime in whole days.
func roundDays(d time.Duration) string {
	return fmt.Sprintf("%d days", int(d.Round(24*time.Hour)/(24*time.Hour)))
}

// watchLDAPCerts opens, raises and closes the expiry findings of the
// certificates read from LDAP stores: it leases the rows due, judges
// them and writes them back like probes (findings, alert mails). It looks
// about every minute, and soon when poked (an agent's post brought new
// certificates or gone ones): at once, but at most once an ldapPokeFloor.
func (m *Monitor) watchLDAPCerts(ctx context.Context, wall time.Time, poked bool) {
	m.ldapPoked = m.ldapPoked || poked
	since := wall.Sub(m.ldapAt)
	byPoke := m.ldapPoked && since >= m.cfg.Poll && wall.Sub(m.ldapPokeAt) >= ldapPokeFloor
	if since < max(m.cfg.Poll, ldapEvery) && !byPoke {
		return
	}
	if m.ldapPoked {
		m.ldapPokeAt = wall
	}
	m.ldapAt, m.ldapPoked = wall, false
	for range 16 { // at most 16 leases of 256 a round; the rest next round
		now := m.cfg.Now()
		ws, err := m.store.LeaseLDAPCerts(ctx, m.cfg.Owner, now, now.Add(m.cfg.Lease), 256)
		if err != nil && ctx.Err() == nil {
			m.log.Warn().Str("code", logcode.LeaseFailed).Time("event_time", time.Now()).Err(err).Msg("cannot lease the LDAP certificates' rows")
		}
		if err != nil || len(ws) == 0 {
			return
		}
		vs := make([]finding.Verdict, len(ws))
		for i, w := range ws {
			vs[i] = m.cfg.Policy.JudgeLDAPCert(w, now)
		}
		held, err := m.store.WriteBack(ctx, m.cfg.Owner, vs, m.cfg.AlertBatch)
		if err != nil {
			m.log.Warn().Str("code", logcode.WriteBackFailed).Time("event_time", time.Now()).Err(err).Msg("cannot write the LDAP certificates' expiry back")
			return
		}
		for i, v := range vs {
			m.logVerdict(ws[i].Target, v, held[i])
		}
		if len(ws) < 256 {
			return
		}
	}
}
