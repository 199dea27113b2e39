// SPDX-License-Identifier: Apache-2.0

package main

import (
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/keychest/keychest-lined/finding"
	"github.com/keychest/keychest-lined/mailer"
	"github.com/keychest/keychest-lined/web"
)

// Struct tags cannot name constants, so these tests hold the settings'
// defaults to the ones the packages fall back to themselves.

// defaults is the configuration with no variable set.
func defaults(t *testing.T) Config {
	t.Helper()
	var c Config
	if err := envconfig.Process("KEYCHEST_TEST_UNSET", &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// KEYCHEST_ALERT_BATCH's default is finding.DefaultAlertBatch, the one
// the monitor and store fall back to.
func TestAlertBatchDefaultIsFindings(t *testing.T) {
	if c := defaults(t); c.AlertBatch != finding.DefaultAlertBatch {
		t.Errorf("KEYCHEST_ALERT_BATCH defaults to %s, finding.DefaultAlertBatch is %s", c.AlertBatch, finding.DefaultAlertBatch)
	}
}

// The mail sender's and the ACME endpoint's settings default to what
// mailer and web fall back to.
func TestSettingsDefaultToThePackages(t *testing.T) {
	c := defaults(t)
	if c.MailRetryMin != mailer.DefaultRetryMin || c.MailRetryMax != mailer.DefaultRetryMax || c.MailGiveUp != mailer.DefaultGiveUp {
		t.Errorf("KEYCHEST_MAIL_RETRY_MIN, _RETRY_MAX, _GIVE_UP default to %s, %s, %s; mailer's are %s, %s, %s",
			c.MailRetryMin, c.MailRetryMax, c.MailGiveUp, mailer.DefaultRetryMin, mailer.DefaultRetryMax, mailer.DefaultGiveUp)
	}
	if got := acmeLimits(c); got != web.DefaultACMELimits {
		t.Errorf("the ACME settings default to %+v, web.DefaultACMELimits is %+v", got, web.DefaultACMELimits)
	}
}
