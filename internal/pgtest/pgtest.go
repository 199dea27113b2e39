// SPDX-License-Identifier: Apache-2.0

// Package pgtest gives tests a database of their own, with the schema
// applied, on the PostgreSQL that "make test" starts.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/keychest/keychest-lined/migrations"
	"github.com/keychest/keychest-lined/store"
)

// EnvURL names the variable holding the URL of a database from which the
// tests may create and drop databases.
const EnvURL = "KEYCHEST_TEST_DATABASE_URL"

// NewDatabase creates an empty database with the schema migrated, drops it
// when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	url := NewEmptyDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return url
}

// NewDatabaseAt creates a database with the migrations up to version
// applied, as an older server left it, and returns its URL.
func NewDatabaseAt(t testing.TB, version int32) string {
	t.Helper()
	url := NewEmptyDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, "schema_version")
	if err == nil {
		err = m.LoadMigrations(migrations.FS)
	}
	if err == nil {
		err = m.MigrateTo(ctx, version)
	}
	if err != nil {
		t.Fatalf("migrate to %d: %v", version, err)
	}
	return url
}

// NewEmptyDatabase creates a database without any schema, drops it when
// the test ends, and returns its URL.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvURL)
	if admin == "" {
		t.Fatalf("%s is not set: run the tests with 'make test', which starts a PostgreSQL for them", EnvURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var raw [6]byte
	rand.Read(raw[:])
	name := "keychest_test_" + hex.EncodeToString(raw[:])
	exec(ctx, t, admin, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		exec(ctx, t, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func exec(ctx context.Context, t testing.TB, dbURL, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
