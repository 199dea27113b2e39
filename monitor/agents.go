// SPDX-License-Identifier: Apache-2.0

package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/logcode"
)

// JudgeAgent judges a claimed keychest-agent's silence at now, on the
// agent's own row: silent for longer than silentAfter opens agent_silent
// at once (the time since its last call is a fact, not a blip), and a
// call since closes it. It does no I/O.
func JudgeAgent(t finding.Target, lastSeen, now time.Time, silentAfter time.Duration) finding.Verdict {
	v := finding.Verdict{TargetID: t.ID, StartedAt: now, CheckedAt: now, NextDue: now.Add(silentAfter), State: StateOK}
	_, open := t.Open[finding.KindAgentSilent]
	silent := now.Sub(lastSeen) > silentAfter
	switch {
	case silent && !open:
		v.Open = []finding.Finding{{Kind: finding.KindAgentSilent, Severity: finding.Warning,
			Detail: fmt.Sprintf("no call from the agent since %s (more than %s)", lastSeen.UTC().Format(time.RFC3339), silentAfter)}}
	case !silent && open:
		v.Close = []string{finding.KindAgentSilent}
	}
	if silent {
		v.State = StateWarning
	}
	return v
}

// agentsEvery is how often the agents' silence is judged.
func (m *Monitor) agentsEvery() time.Duration {
	return max(m.cfg.Poll, min(m.cfg.AgentSilentAfter/4, 30*time.Second))
}

// watchAgents opens and closes agent_silent findings: it leases the rows
// of the agents whose silence changed, judges them, and writes them back
// like probes (findings, alert mails).
func (m *Monitor) watchAgents(ctx context.Context, wall time.Time) {
	if m.cfg.AgentSilentAfter <= 0 || wall.Sub(m.agentsAt) < m.agentsEvery() {
		return
	}
	m.agentsAt = wall
	now := m.cfg.Now()
	ws, err := m.store.LeaseAgents(ctx, m.cfg.Owner, now, now.Add(m.cfg.Lease), m.cfg.AgentSilentAfter, 256)
	if err != nil || len(ws) == 0 {
		if err != nil && ctx.Err() == nil {
			m.log.Warn().Str("code", logcode.LeaseFailed).Time("event_time", time.Now()).Err(err).Msg("cannot lease the agents' rows")
		}
		return
	}
	vs := make([]finding.Verdict, len(ws))
	for i, w := range ws {
		vs[i] = JudgeAgent(w.Target, w.LastSeen, now, m.cfg.AgentSilentAfter)
	}
	held, err := m.store.WriteBack(ctx, m.cfg.Owner, vs, m.cfg.AlertBatch)
	if err != nil {
		m.log.Warn().Str("code", logcode.WriteBackFailed).Time("event_time", time.Now()).Err(err).Msg("cannot write the agents' silence back")
		return
	}
	for i, v := range vs {
		m.logVerdict(ws[i].Target, v, held[i])
	}
}
