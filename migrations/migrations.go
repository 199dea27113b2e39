// SPDX-License-Identifier: Apache-2.0

// Package migrations holds the database schema as numbered SQL files in
// jackc/tern's format, embedded in the binary and applied at start.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
