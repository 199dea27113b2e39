// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keychest/keychest-lined/finding"
)

// The schema's CHECK on mon_findings.kind holds exactly the kinds of
// package finding: a kind added there without a migration fails here.
func TestFindingKindsRule(t *testing.T) {
	_, url := open(t)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var def string
	if err := conn.QueryRow(context.Background(), `SELECT pg_get_constraintdef(oid) FROM pg_constraint
		WHERE conname = 'mon_findings_kind_check'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	var inSchema []string
	for _, m := range regexp.MustCompile(`'([a-z_]+)'`).FindAllStringSubmatch(def, -1) {
		inSchema = append(inSchema, m[1])
	}
	want := finding.Kinds()
	slices.Sort(inSchema)
	slices.Sort(want)
	if !slices.Equal(inSchema, want) {
		t.Errorf("the schema allows %v, package finding has %v", inSchema, want)
	}
}
