// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/keychest/keychest-lined/store"
)

// listACME is "keychest-lined acme [--email E] [--json]": per domain and
// proxy, the last order keychest-amp reported, its status, the last
// error and when; latest activity first.
func listACME(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	if err := optionalEmail(&a); err != nil {
		return err
	}
	rows, err := db.ACMEActivities(ctx, a.email)
	if err != nil || a.json {
		if rows == nil && err == nil {
			rows = []store.ACMEActivity{}
		}
		return orJSON(out, rows, err)
	}
	return table(out, "DOMAIN\tLAST ORDER\tSTATUS\tLAST VALID\tLAST ERROR\tERROR AT\tPROXY", len(rows), func(i int) string {
		r := rows[i]
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Name, when(r.OrderAt), orNone(r.OrderStatus), when(r.ValidAt),
			orNone(r.Error), when(r.ErrorAt), r.Proxy)
	})
}

// when is a time as "day" prints it, "-" when unknown.
func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return day(*t)
}
