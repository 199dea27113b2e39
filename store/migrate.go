// SPDX-License-Identifier: Apache-2.0

package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"

	"github.com/keychest/keychest-lined/migrations"
)

// Migrate brings the schema at databaseURL up to the newest migration.
// tern holds a PostgreSQL advisory lock while it works, so servers that
// start together on one database apply each migration once; applied
// migrations are skipped, so running it again is harmless.
func Migrate(ctx context.Context, databaseURL string) (version int32, err error) {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, "schema_version")
	if err != nil {
		return 0, err
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return 0, err
	}
	if err := m.Migrate(ctx); err != nil {
		return 0, err
	}
	return m.GetCurrentVersion(ctx)
}

// Errors of CheckSchema.
var (
	ErrNoSchema  error = ownError("the database has no keychest-lined schema")
	ErrOldSchema error = ownError("the database's schema is older than this keychest-lined")
)

// CheckSchema reports, without changing anything, whether the schema at
// databaseURL is the one this binary knows: ErrNoSchema for a database
// never migrated (or the wrong one), ErrOldSchema for one that needs
// migrations. A newer schema passes: migrations only add.
func CheckSchema(ctx context.Context, databaseURL string) error {
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer conn.Close(ctx)
	var version int32
	err = conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&version)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "42P01", errors.Is(err, pgx.ErrNoRows): // undefined_table
		return ErrNoSchema
	case err != nil:
		return classify(err)
	}
	newest, err := NewestSchema()
	if err != nil {
		return err
	}
	if version < newest {
		return fmt.Errorf("%w: it is at version %d, this one needs %d", ErrOldSchema, version, newest)
	}
	return nil
}

// NewestSchema is the version the embedded migrations lead to.
func NewestSchema() (int32, error) {
	m, err := migrate.NewMigrator(context.Background(), nil, "schema_version")
	if err != nil {
		return 0, err
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return 0, err
	}
	return int32(len(m.Migrations)), nil
}
