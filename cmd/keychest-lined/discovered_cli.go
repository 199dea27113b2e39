// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/keychest/keychest-lined/monitor"

	"github.com/keychest/keychest-lined/store"
)

// The operator's view of what agents discovered (docs/agent.md).
func init() {
	subcommands["discovered"] = subcommand{"every endpoint agents discovered: account, site, name:port, source, first seen, addresses, state", "", listDiscovered}
	subcommands["discovered-certs"] = subcommand{"every certificate agents read from LDAP stores, soonest expiry first: account, site, DN, subject, expiry, state", "", listDiscoveredCerts}
}

// discoveredStore is what "discovered" needs of the storage.
type discoveredStore interface {
	AllDiscovered(ctx context.Context) ([]store.Discovered, error)
	AllDiscoveredCerts(ctx context.Context) ([]store.DiscoveredCert, error)
}

var _ discoveredStore = (*store.Postgres)(nil)

func listDiscovered(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	ds, ok := db.(discoveredStore)
	if !ok {
		return errors.New("this store keeps no discovered endpoints")
	}
	rows, err := ds.AllDiscovered(ctx)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	return table(out, "ACCOUNT\tSITE\tENDPOINT\tSOURCE\tFIRST SEEN\tADDRESSES\tSTATE", len(rows), func(i int) string {
		r := rows[i]
		return fmt.Sprintf("%s\t%s\t%s:%d\t%s\t%s\t%d\t%s", r.Email, r.Site, r.Name, r.Port, r.Source, day(r.FirstSeen),
			r.Addresses, discoveredState(r))
	})
}

// discoveredState is added, ignored, gone or proposed.
func discoveredState(r store.Discovered) string {
	switch {
	case r.Added:
		return "added"
	case r.Ignored != nil:
		return "ignored"
	case r.Gone != nil:
		return "gone"
	}
	return "proposed"
}

func listDiscoveredCerts(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	ds, ok := db.(discoveredStore)
	if !ok {
		return errors.New("this store keeps no discovered certificates")
	}
	rows, err := ds.AllDiscoveredCerts(ctx)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	now := time.Now()
	policy := monitor.DefaultPolicy() // the configured thresholds, as the monitor's findings use them
	if cfg, err := loadConfig(); err == nil && cfg.MonitorConfig.check() == nil {
		policy = cfg.MonitorConfig.policy()
	}
	return table(out, "ACCOUNT\tSITE\tDN\tATTRIBUTE\tSUBJECT\tEXPIRES\tDAYS\tSTATE", len(rows), func(i int) string {
		r := rows[i]
		state := policy.ExpirySeverity(r.NotBefore, r.NotAfter, now)
		if state == "" {
			state = "ok"
		}
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s", r.Email, r.Site, r.DN, r.Attribute, orNone(r.Subject),
			day(r.NotAfter), int(math.Floor(r.NotAfter.Sub(now).Hours()/24)), state)
	})
}
