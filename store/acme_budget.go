// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// A key's ACME budget is a token bucket in key_buckets, like the
// per-address limits of limits.go but counted per key and in rows: it
// holds perHour tokens and refills evenly over an hour. A batch takes its
// cost in the transaction that stores it, so a batch that fails, or whose
// client goes away, takes nothing. A batch costing more than a full
// bucket passes when the bucket is full and leaves it in debt.

// takeACMEBudget takes cost tokens from the key's bucket, or refuses with
// a BudgetError and takes none. perHour 0 is no limit.
func takeACMEBudget(ctx context.Context, tx pgx.Tx, keyID int64, perHour, cost int) error {
	if perHour <= 0 || cost <= 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO key_buckets (kind, api_key_id, tokens, at) VALUES ('acme_rows', $1, $2, now())
		ON CONFLICT (kind, api_key_id) DO NOTHING`, keyID, float64(perHour)); err != nil {
		return err
	}
	var tokens float64
	err := tx.QueryRow(ctx, `SELECT least($2::float8, tokens + greatest(0, extract(epoch FROM now() - at)) * $2::float8 / 3600)
		FROM key_buckets WHERE kind = 'acme_rows' AND api_key_id = $1 FOR UPDATE`, keyID, float64(perHour)).Scan(&tokens)
	if err != nil {
		return err
	}
	if need := float64(min(cost, perHour)); tokens < need {
		return &BudgetError{Wait: time.Duration((need - tokens) / float64(perHour) * float64(time.Hour))}
	}
	_, err = tx.Exec(ctx, `UPDATE key_buckets SET tokens = $2, at = greatest(at, now())
		WHERE kind = 'acme_rows' AND api_key_id = $1`, keyID, tokens-float64(cost))
	return err
}
