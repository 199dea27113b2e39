// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ClaimKey binds a key to the account of an email address. A key the
// server does not know yet is registered as one the client made. A claim
// that binds queues its mail in the same transaction: "confirm" for an
// unconfirmed account, "new_key" for a confirmed one. The key then waits
// (api_keys.pending_at) until the owner answers that very mail (its
// confirm or approve link) or the operator approves it: until then its
// domains are pending, whoever else confirmed the account. Two claims racing on
// one new key both try to insert it; the loser sees a unique violation and
// runs again, now finding the winner's row.
func (p *Postgres) ClaimKey(ctx context.Context, c Claim) (ClaimOutcome, error) {
	for attempt := 0; ; attempt++ {
		var out ClaimOutcome
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
			var err error
			out, err = claimInTx(ctx, tx, c)
			return err
		})
		if isUniqueViolation(err) && attempt == 0 {
			continue
		}
		if err != nil {
			return 0, classify(err)
		}
		return out, nil
	}
}

// account is the state of the account a claim names.
type account struct {
	id                 int64
	created, confirmed bool
}

func claimInTx(ctx context.Context, tx pgx.Tx, c Claim) (ClaimOutcome, error) {
	acct, err := ensureAccount(ctx, tx, c)
	if err != nil {
		return 0, err
	}
	keyID, out, err := bindKey(ctx, tx, c, acct)
	if err != nil || out == ClaimUnchanged {
		return out, err
	}
	held, err := checkClaimLimits(ctx, tx, c, acct)
	if err != nil {
		return 0, err
	}
	return out, queueClaimMail(ctx, tx, c, acct, keyID, held)
}

// ensureAccountSQL takes a token of the client's "claim" bucket and, if it
// got one, creates the account for the email unless it exists.
var ensureAccountSQL = `
WITH ` + takeTokenSQL(limitClaims, 3, 4) + `, ins AS (
    INSERT INTO accounts (email, created_ip) SELECT $1, $2 FROM allowed WHERE ok
    ON CONFLICT (email) DO NOTHING RETURNING id
)
SELECT ok, tokens, (SELECT id FROM ins) FROM allowed`

// ensureAccount takes the claim's token (refusing a client past its
// limit), then finds and locks the account for c.Email, creating it
// dormant (unconfirmed) when it is new. A blocked account takes no claims.
func ensureAccount(ctx context.Context, tx pgx.Tx, c Claim) (account, error) {
	var a account
	var ok bool
	var tokens float64
	var id *int64
	client, perHour := bucketArgs(c.IP, c.MaxPerIPHour)
	err := tx.QueryRow(ctx, ensureAccountSQL, c.Email, inet(c.IP), client, perHour).Scan(&ok, &tokens, &id)
	if err == nil {
		err = limitError(ok, tokens, c.IP, perHour)
	}
	if err != nil {
		return a, err
	}
	if id != nil {
		return account{id: *id, created: true}, nil
	}
	var blocked bool
	// The row lock serialises claims for one account, so its limits hold.
	err = tx.QueryRow(ctx, `SELECT id, confirmed_at IS NOT NULL, blocked_at IS NOT NULL
		FROM accounts WHERE email = $1 FOR UPDATE`, c.Email).Scan(&a.id, &a.confirmed, &blocked)
	if err == nil && blocked {
		err = ErrAccountBlocked
	}
	return a, err
}

// bindKey binds the key to the account, registering it if it is new. The
// key waits for approval (pending_at).
func bindKey(ctx context.Context, tx pgx.Tx, c Claim, a account) (int64, ClaimOutcome, error) {
	var keyID int64
	var owner *int64
	var revoked bool
	err := tx.QueryRow(ctx, `SELECT id, account_id, revoked_at IS NOT NULL FROM api_keys
		WHERE key_hash = $1 FOR UPDATE`, c.Key.Hash[:]).Scan(&keyID, &owner, &revoked)
	outcome := ClaimExistingAccount
	if a.created {
		outcome = ClaimNewAccount
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		err = tx.QueryRow(ctx, `INSERT INTO api_keys
			(key_hash, key_prefix, origin, account_id, created_ip, claimed_at, claimed_ip, pending_at)
			VALUES ($1, $2, 'client', $3, $4, now(), $4, now()) RETURNING id`,
			c.Key.Hash[:], c.Key.Prefix, a.id, inet(c.IP)).Scan(&keyID)
		return keyID, outcome, err
	case err != nil:
		return 0, 0, err
	case revoked:
		return 0, 0, ErrKeyRevoked
	case owner != nil && *owner == a.id:
		return keyID, ClaimUnchanged, nil
	case owner != nil:
		return 0, 0, ErrKeyClaimed
	}
	_, err = tx.Exec(ctx, `UPDATE api_keys SET account_id = $2, claimed_at = now(), claimed_ip = $3,
		pending_at = now() WHERE id = $1`, keyID, a.id, inet(c.IP))
	return keyID, outcome, err
}

// holdings are what an account holds, counted in the claim's transaction.
type holdings struct{ keys, domains int }

// checkClaimLimits refuses a claim that would send one mail too many to
// the address today, or give an unconfirmed account too many keys. It
// also counts what the account holds, for the mail.
func checkClaimLimits(ctx context.Context, tx pgx.Tx, c Claim, a account) (holdings, error) {
	var mails int
	var h holdings
	err := tx.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE to_email = $1 AND kind IN ('confirm', 'new_key') AND created_at > now() - interval '1 day'),
		(SELECT count(*) FROM api_keys WHERE account_id = $2),
		(SELECT count(*) FROM domains d JOIN api_keys k ON k.id = d.api_key_id WHERE k.account_id = $2)`,
		c.Email, a.id).Scan(&mails, &h.keys, &h.domains)
	switch {
	case err != nil:
		return h, err
	case c.MaxMailsPerDay > 0 && mails >= c.MaxMailsPerDay:
		return h, ErrMailLimit
	case c.MaxUnconfirmedKeys > 0 && !a.confirmed && h.keys > c.MaxUnconfirmedKeys:
		return h, ErrUnconfirmedKeys
	}
	return h, nil
}

// queueClaimMail stores the hashes of the tokens the mail links to, the
// mail's facts, and the claim's audit entry, in one round trip. The mailer
// words the mail when it sends it; the raw tokens wait in link_tokens
// until then (or until the mail is given up).
func queueClaimMail(ctx context.Context, tx pgx.Tx, c Claim, a account, keyID int64, held holdings) error {
	now := time.Now().UTC()
	facts := ClaimMail{KeyPrefix: c.Key.Prefix, IP: c.IP, At: now,
		Keys: held.keys, Domains: held.domains, Expires: now.Add(TokenLifetime)}
	kind, tokens := "confirm", map[string]string{"confirm": c.Tokens.Confirm, "block": c.Tokens.Block}
	if a.confirmed {
		kind, tokens = "new_key", map[string]string{"approve": c.Tokens.Approve, "revoke": c.Tokens.Revoke}
	}
	b := &pgx.Batch{}
	for action, raw := range tokens {
		if raw == "" {
			return errors.New("claim mail without a " + action + " token")
		}
		hash := HashToken(raw)
		b.Queue(`INSERT INTO tokens (hash, action, account_id, api_key_id, expires_at)
			VALUES ($1, $2, $3, $4, $5)`, hash[:], action, a.id, keyID, facts.Expires)
	}
	b.Queue(`INSERT INTO outbox (kind, to_email, subject, body, link_tokens, claim) VALUES ($1, $2, '', '', $3, $4)`,
		kind, c.Email, tokens, facts)
	b.Queue(`INSERT INTO audit (remote_ip, action, key_prefix, detail)
		VALUES ($1, 'key.claim', $2, jsonb_build_object('email', $3::text, 'new_account', $4::bool))`,
		inet(c.IP), c.Key.Prefix, c.Email, a.created)
	return tx.SendBatch(ctx, b).Close()
}

// standIn is what the body of a claim mail queued before migration 011
// holds in place of the raw token for action; withTokens puts the tokens
// back just before such a mail is sent.
func standIn(action string) string { return "{{" + action + "-token}}" }

// withTokens fills the stand-ins of body with the raw tokens.
func withTokens(body string, tokens map[string]string) string {
	for action, raw := range tokens {
		body = strings.ReplaceAll(body, standIn(action), raw)
	}
	return body
}

// HashToken returns how a link token is stored.
func HashToken(raw string) [32]byte { return sha256.Sum256([]byte(raw)) }
