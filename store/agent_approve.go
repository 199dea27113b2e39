// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"net/netip"

	"github.com/jackc/pgx/v5"
)

// ErrAmbiguousClaim is an approval of an agent's mail claim when claim
// mails to more than one address wait: the operator names the address.
var ErrAmbiguousClaim error = ownError("claim mails to more than one address wait for this agent")

// ApproveAgentClaim does for the operator what the button of an agent's
// claim mail does (run --email): it uses the agent's live, unused
// agent_approve link (the one to email, when email is set) and gives the
// agent to that link's account, confirming the account if it was not.
// It returns the account's address. ErrNotFound when no such link waits
// (none asked, expired or used, or no agent has the id);
// ErrAmbiguousClaim when links to several addresses wait and email is
// empty; ErrAgentClaimed when the agent has an account already or the
// link's account is blocked (nothing changes).
func (p *Postgres) ApproveAgentClaim(ctx context.Context, agentID, email string) (string, error) {
	var to string
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT t.id, t.account_id, t.agent_id, a.email
			FROM tokens t JOIN agents g ON g.id = t.agent_id JOIN accounts a ON a.id = t.account_id
			WHERE g.agent_id = $1 AND ($2 = '' OR a.email = $2) AND t.action = 'agent_approve'
			  AND t.used_at IS NULL AND t.expires_at > now()
			ORDER BY t.id DESC FOR UPDATE OF t`, agentID, email)
		if err != nil {
			return err
		}
		type link struct {
			ID, Account, Agent int64
			Email              string
		}
		links, err := pgx.CollectRows(rows, pgx.RowToStructByPos[link])
		switch {
		case err != nil:
			return err
		case len(links) == 0:
			return ErrNotFound
		}
		for _, l := range links[1:] {
			if l.Email != links[0].Email {
				return ErrAmbiguousClaim
			}
		}
		l := links[0]
		if err := giveAgent(ctx, tx, l.Account, &l.Agent, netip.Addr{}, "cli"); err != nil {
			return err
		}
		to = l.Email
		_, err = tx.Exec(ctx, `UPDATE tokens SET used_at = now() WHERE id = $1`, l.ID)
		return err
	})
	return to, classify(err)
}
