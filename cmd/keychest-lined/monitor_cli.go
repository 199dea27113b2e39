// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/internal/words"
	"github.com/keychest/keychest-lined/mailer"
	"github.com/keychest/keychest-lined/monitor"
	"github.com/keychest/keychest-lined/names"
	"github.com/keychest/keychest-lined/store"
)

// runProbe is "keychest-lined probe HOST[:PORT]": one probe now, with the
// monitor's settings and address rules, printed; nothing is stored and no
// database is needed.
func runProbe(args []string) int {
	fs := flag.NewFlagSet("keychest-lined probe", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: keychest-lined probe [--json] HOST[:PORT]")
		return 2
	}
	var mc MonitorConfig
	if err := envconfig.Process(envPrefix, &mc); err != nil {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		return 2
	}
	host, port, err := monitor.HostPort(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		return 2
	}
	p, err := mc.prober()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keychest-lined:", err)
		return 2
	}
	res := p.Probe(context.Background(), host, port)
	report := probeReport(res, mc.policy(), time.Now())
	if *asJSON {
		err = orJSON(os.Stdout, report, nil)
	} else {
		err = printProbe(os.Stdout, report)
	}
	if err != nil {
		return 1
	}
	if res.Class != monitor.ClassOK {
		return 1
	}
	return 0
}

// probeJSON is what "probe" prints.
type probeJSON struct {
	Target    string        `json:"target"`
	Class     string        `json:"class"`
	Detail    string        `json:"detail,omitempty"`
	Expiry    string        `json:"expiry"` // "", warning, critical or expired
	TookMS    int64         `json:"took_ms"`
	Addresses []addressJSON `json:"addresses"`
}

type addressJSON struct {
	Address    string     `json:"address"`
	Class      string     `json:"class"`
	Detail     string     `json:"detail,omitempty"`
	TLSVersion string     `json:"tls_version,omitempty"`
	Problems   []string   `json:"problems,omitempty"`
	Chain      []certJSON `json:"chain,omitempty"`
}

type certJSON struct {
	Fingerprint string `json:"sha256"`
	finding.CertInfo
	DaysLeft int `json:"days_left"`
}

func probeReport(res monitor.Result, pol monitor.Policy, now time.Time) probeJSON {
	r := probeJSON{Target: fmt.Sprintf("%s:%d", res.Host, res.Port), Class: string(res.Class), Detail: res.Detail,
		TookMS: res.Took.Milliseconds(), Addresses: []addressJSON{}}
	for _, a := range res.Addresses {
		aj := addressJSON{Address: a.Address.String(), Class: string(a.Class), Detail: a.Detail, TLSVersion: a.TLSVersion}
		for _, p := range a.Problems {
			aj.Problems = append(aj.Problems, string(p))
		}
		for i, c := range a.Chain {
			info := monitor.CertInfo(c)
			aj.Chain = append(aj.Chain, certJSON{Fingerprint: hex.EncodeToString(info.Fingerprint[:]), CertInfo: info,
				DaysLeft: words.DaysLeft(c.NotAfter, now)})
			if i == 0 {
				r.Expiry = finding.Worse(r.Expiry, pol.ExpirySeverity(c.NotBefore, c.NotAfter, now))
			}
		}
		r.Addresses = append(r.Addresses, aj)
	}
	return r
}

func printProbe(out io.Writer, r probeJSON) error {
	fmt.Fprintf(out, "%s  %s  %d ms", r.Target, r.Class, r.TookMS)
	if r.Expiry != "" {
		fmt.Fprintf(out, "  expiry: %s", r.Expiry)
	}
	if r.Detail != "" {
		fmt.Fprintf(out, "\n  %s", r.Detail)
	}
	fmt.Fprintln(out)
	for _, a := range r.Addresses {
		fmt.Fprintf(out, "  %s  %s  %s\n", a.Address, a.Class, a.TLSVersion)
		if a.Detail != "" {
			fmt.Fprintf(out, "    %s\n", a.Detail)
		}
		for i, c := range a.Chain {
			role := "leaf "
			if i > 0 {
				role = "chain"
			}
			fmt.Fprintf(out, "    %s %s  SANs %s\n", role, c.Subject, strings.Join(c.SANs, ","))
			fmt.Fprintf(out, "          issuer %s  serial %s\n", c.Issuer, c.Serial)
			fmt.Fprintf(out, "          %s to %s (%d days left)  %s %d  %s\n", day(c.NotBefore), day(c.NotAfter),
				c.DaysLeft, c.KeyType, c.KeyBits, c.SigAlg)
			fmt.Fprintf(out, "          sha256 %s\n", c.Fingerprint)
		}
	}
	return nil
}

// optionalEmail normalises --email when it was given.
func optionalEmail(a *cliArgs) error {
	if a.email == "" {
		return nil
	}
	email, perr := names.ParseEmail(a.email)
	if perr != nil {
		return fmt.Errorf("--email: %s", perr)
	}
	a.email = email
	return nil
}

// listCerts is "keychest-lined certs": every target, soonest expiry first.
func listCerts(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	if err := optionalEmail(&a); err != nil {
		return err
	}
	rows, err := db.Certs(ctx, a.email)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	now := time.Now()
	return table(out, "TARGET\tSTATE\tCLASS\tDAYS\tEXPIRES\tISSUER\tADDRESSES\tCHECKED\tFINDINGS", len(rows), func(i int) string {
		r := rows[i]
		days, expires, checked := "-", "-", "-"
		if r.Expires != nil {
			days, expires = fmt.Sprint(words.DaysLeft(*r.Expires, now)), day(*r.Expires)
		}
		if r.Checked != nil {
			checked = day(*r.Checked)
		}
		return fmt.Sprintf("%s:%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s", r.Name, r.Port, r.State, orNone(r.Class), days, expires,
			orNone(r.IssuerCN), r.Addresses, checked, orNone(strings.Join(r.Findings, ",")))
	})
}

// listFindings is "keychest-lined findings": newest first.
func listFindings(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	if err := optionalEmail(&a); err != nil {
		return err
	}
	rows, err := db.Findings(ctx, a.open, a.email)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	return table(out, "TARGET\tKIND\tSEVERITY\tOPENED\tCLOSED\tDETAIL", len(rows), func(i int) string {
		r := rows[i]
		closed := "open"
		if r.Closed != nil {
			closed = day(*r.Closed)
		}
		return fmt.Sprintf("%s:%d\t%s\t%s\t%s\t%s\t%s", r.Name, r.Port, r.Kind, r.Severity, day(r.Opened), closed, r.Detail)
	})
}

// listAlerts is "keychest-lined alerts": recent alert mails, newest first.
func listAlerts(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	if err := optionalEmail(&a); err != nil {
		return err
	}
	rows, err := db.AlertMails(ctx, a.email)
	if err != nil || a.json {
		return orJSON(out, rows, err)
	}
	return table(out, "ID\tTO\tSTATUS\tFINDINGS\tKINDS\tQUEUED\tDUE\tLAST ERROR", len(rows), func(i int) string {
		r := rows[i]
		return fmt.Sprintf("%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s", r.ID, r.To, r.Status, r.Items, orNone(strings.Join(r.Kinds, ",")),
			day(r.CreatedAt), day(r.Due), orNone(r.LastError))
	})
}

// printDigest is "keychest-lined digest --email E --dry-run": the digest
// the account would get now, with stand-ins for its links.
func printDigest(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	if !a.dryRun {
		return errors.New("digest only prints (--dry-run); the monitor sends digests on KEYCHEST_DIGEST_DAY at KEYCHEST_DIGEST_HOUR")
	}
	d, err := db.DigestFor(ctx, a.email)
	if err != nil {
		return err
	}
	m := store.Mail{Kind: "digest", To: a.email, Digest: &d,
		Tokens: map[string]string{"account": "ACCOUNT-LINK-TOKEN", "digest_off": "UNSUBSCRIBE-TOKEN"}}
	mailer.Composer{PublicURL: "KEYCHEST_PUBLIC_URL"}.Fill(&m)
	if a.json {
		return orJSON(out, m.Digest, nil)
	}
	_, err = fmt.Fprintf(out, "To: %s\nSubject: %s\n\n%s", m.To, m.Subject, m.Body)
	return err
}

// rotateLinks is "keychest-lined rotate-links --email E".
func rotateLinks(ctx context.Context, db operatorStore, a cliArgs, out io.Writer) error {
	n, err := db.RotateAccountLinks(ctx, a.email)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "revoked %s of %s; the next mail carries a fresh one\n", words.Count(int(n), "account link"), a.email)
	return err
}
