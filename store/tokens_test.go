// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/store"
)

// claimWithTokens claims a new key for email with known link tokens.
func claimWithTokens(t *testing.T, p *store.Postgres, key, email string) store.MailTokens {
	t.Helper()
	tokens := store.MailTokens{Confirm: key + "-confirm", Block: key + "-block", Revoke: key + "-revoke", Approve: key + "-approve"}
	_, err := p.ClaimKey(context.Background(), store.Claim{Key: ref(key), Email: email, IP: ip, Tokens: tokens,
		MaxMailsPerDay: 10, MaxUnconfirmedKeys: 10})
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func TestTokensWorkOnceForTheirActionUntilTheyExpire(t *testing.T) {
	p, url := open(t)
	ctx := context.Background()
	tokens := claimWithTokens(t, p, "token-key-0123456789", "t@example.com")

	if _, err := p.LookupToken(ctx, "block", tokens.Confirm); !errors.Is(err, store.ErrTokenUnknown) {
		t.Fatalf("confirm token as a block link: %v", err)
	}
	if _, err := p.UseToken(ctx, "confirm", "not-a-token", ip); !errors.Is(err, store.ErrTokenUnknown) {
		t.Fatalf("made-up token: %v", err)
	}
	info, err := p.LookupToken(ctx, "confirm", tokens.Confirm)
	if err != nil || info.Email != "t@example.com" || info.KeyPrefix != "token-ke" {
		t.Fatalf("lookup: %+v %v", info, err)
	}
	if _, err := p.UseToken(ctx, "confirm", tokens.Confirm, ip); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UseToken(ctx, "confirm", tokens.Confirm, ip); !errors.Is(err, store.ErrTokenUsed) {
		t.Fatalf("second use: %v", err)
	}
	// No revoke token was issued for an unconfirmed account.
	if _, err := p.LookupToken(ctx, "revoke", tokens.Revoke); !errors.Is(err, store.ErrTokenUnknown) {
		t.Fatalf("revoke token: %v", err)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE tokens SET expires_at = now() - interval '1 second' WHERE action = 'block'`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UseToken(ctx, "block", tokens.Block, ip); !errors.Is(err, store.ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	var audits int
	conn.QueryRow(ctx, `SELECT count(*) FROM audit WHERE action = 'account.confirm' AND remote_ip = $1`, ip).Scan(&audits)
	if audits != 1 {
		t.Fatalf("%d confirm audit rows", audits)
	}
}

func TestClaimLimits(t *testing.T) {
	p, _ := open(t)
	ctx := context.Background()
	claim := func(key string, mails, keys int) error {
		_, err := p.ClaimKey(ctx, store.Claim{Key: ref(key), Email: "limits@example.com", IP: ip,
			Tokens:         store.MailTokens{Confirm: key + "c", Block: key + "b", Revoke: key + "r", Approve: key + "a"},
			MaxMailsPerDay: mails, MaxUnconfirmedKeys: keys})
		return err
	}
	if err := claim("limit-key-1-0123456789", 10, 1); err != nil {
		t.Fatal(err)
	}
	if err := claim("limit-key-2-0123456789", 10, 1); !errors.Is(err, store.ErrUnconfirmedKeys) {
		t.Fatalf("second key of an unconfirmed account: %v", err)
	}
	if err := claim("limit-key-3-0123456789", 1, 10); !errors.Is(err, store.ErrMailLimit) {
		t.Fatalf("second mail of the day: %v", err)
	}
	if err := claim("limit-key-1-0123456789", 1, 1); err != nil {
		t.Fatalf("the same claim again sends no mail and passes: %v", err)
	}
}
