// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/keychest/keychest-lined/handlers"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// The operator's commands about keychest-agents (docs/agent.md).
func init() {
	subcommands["agents"] = subcommand{"every keychest-agent: id, account, site, host, version, last seen, state", "", listAgents}
	subcommands["agent-logs"] = subcommand{"the last 1000 log entries a keychest-agent posted (--agent ID; --json: as posted)", "", agentLogs}
	subcommands["approve-agent"] = subcommand{"give a keychest-agent to the account its live claim mail (run --email) went to, as the mail's button does (--agent ID; --email E when mails to several addresses wait, in any case). Only for an owner who asked you: check out of band (a reply from E, a call you placed) that the owner of E wants this agent", "", approveAgent}
}

// approveAgent approves an agent's claim by mail for the owner.
func approveAgent(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	if a.agent == "" {
		return errors.New("--agent is required (its id, as \"keychest-lined agents\" shows it)")
	}
	to := a.email
	if to != "" {
		var err error
		if to, err = names.ParseEmail(to); err != nil { // stored as ParseEmail gives it: lowercase
			return fmt.Errorf("--email: %w", err)
		}
	}
	email, err := db.ApproveAgentClaim(ctx, a.agent, to)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no claim mail waits for agent %s%s: none asked, or its link expired or was used", a.agent, forEmail(a.email))
	case errors.Is(err, store.ErrAmbiguousClaim):
		return errors.New("claim mails to several addresses wait for agent " + a.agent + ": name one with --email")
	case errors.Is(err, store.ErrAgentClaimed):
		return errors.New("agent " + a.agent + " is claimed already, or the mail's account is blocked: nothing changed")
	case err != nil:
		return err
	}
	_, err = fmt.Fprintf(out, "agent %s given to %s\n", a.agent, email)
	return err
}

// forEmail is " to E", or "" without an address.
func forEmail(email string) string {
	if email == "" {
		return ""
	}
	return " to " + email
}

// agentLogLimit is how many entries agent-logs prints.
const agentLogLimit = 1000

func listAgents(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	rows, err := db.AllAgents(ctx)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	silent := handlers.DefaultAgentSilentAfter
	if cfg, err := loadConfig(); err == nil && cfg.AgentSilentAfter > 0 {
		silent = cfg.AgentSilentAfter
	}
	now := time.Now()
	return table(out, "AGENT\tACCOUNT\tSITE\tHOST\tVERSION\tLAST SEEN\tSTATE", len(rows), func(i int) string {
		r := rows[i]
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", r.ID, orNone(r.Email), r.Site, orNone(r.Host), orNone(r.Version),
			day(r.LastSeen), handlers.AgentState(r.Agent, now, silent))
	})
}

func agentLogs(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	if a.agent == "" {
		return errors.New("--agent is required (its id, as \"keychest-lined agents\" shows it)")
	}
	rows, err := db.AgentLogs(ctx, a.agent, agentLogLimit)
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("no agent " + a.agent)
	}
	if err != nil {
		return err
	}
	if a.json {
		for _, r := range rows {
			fmt.Fprintf(out, "%s\n", r.Entry)
		}
		return nil
	}
	return table(out, "TIME\tCODE\tLEVEL\tMESSAGE", len(rows), func(i int) string {
		r := rows[i]
		var e struct {
			Message string `json:"message"`
		}
		json.Unmarshal(r.Entry, &e)
		at := r.ReceivedAt
		if r.EventTime != nil {
			at = *r.EventTime
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s", at.UTC().Format(time.RFC3339), r.Code, orNone(r.Level), e.Message)
	})
}
