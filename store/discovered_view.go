// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// MaxPageProposals is how many proposals the account page shows at most
// (an agent may post a zone of 200,000 names).
const MaxPageProposals = 500

// openProposalsSQL picks an account's open proposals ($1: the account's
// id): neither ignored nor already targets behind a site; gone ones stay.
var openProposalsSQL = openProposalsOf("$1")

// openProposalsOf picks the open proposals d of the account whose id is
// the SQL expression account.
func openProposalsOf(account string) string {
	return `d.account_id = ` + account + ` AND d.ignored_at IS NULL
	AND NOT EXISTS (SELECT 1 FROM agent_targets t WHERE t.account_id = d.account_id AND t.name = d.name AND t.port = d.port
		AND ` + liveSiteTarget("t") + `)`
}

// pageProposals reads an account's open proposals for its page, live ones
// first, then by site, name and port, at most MaxPageProposals; it also
// reports how many there are in all.
func pageProposals(ctx context.Context, tx pgx.Tx, account int64) ([]Discovered, int, error) {
	var total int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM discovered d WHERE `+openProposalsSQL, account).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := tx.Query(ctx, `SELECT '', d.site, d.name, d.port, d.source, d.addresses, d.first_seen, d.last_seen,
			d.gone_at, d.ignored_at, false
		FROM discovered d WHERE `+openProposalsSQL+`
		ORDER BY d.gone_at IS NOT NULL, d.site, d.name, d.port LIMIT $2`, account, MaxPageProposals)
	if err != nil {
		return nil, 0, err
	}
	out, err := pgx.CollectRows(rows, scanDiscovered)
	return out, total, err
}

// newProposals counts an account's open proposals first seen since a
// moment (the digest's week).
func newProposals(ctx context.Context, tx pgx.Tx, account int64, since time.Time) (int, error) {
	var n int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM discovered d WHERE `+openProposalsSQL+` AND d.first_seen >= $2`,
		account, since).Scan(&n)
	return n, err
}
