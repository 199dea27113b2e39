package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
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
