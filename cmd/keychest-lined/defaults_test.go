// SPDX-License-Identifier: Apache-2.0

package main

import (
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/keychest/keychest-lined/mailer"
	"github.com/keychest/keychest-lined/web"
)

// The mail sender's and the ACME endpoint's settings default (struct tags
// cannot name constants) to what mailer and web fall back to themselves.
func TestSettingsDefaultToThePackages(t *testing.T) {
	var c Config
	if err := envconfig.Process("KEYCHEST_TEST_UNSET", &c); err != nil {
		t.Fatal(err)
	}
	if c.MailRetryMin != mailer.DefaultRetryMin || c.MailRetryMax != mailer.DefaultRetryMax || c.MailGiveUp != mailer.DefaultGiveUp {
		t.Errorf("KEYCHEST_MAIL_RETRY_MIN, _RETRY_MAX, _GIVE_UP default to %s, %s, %s; mailer's are %s, %s, %s",
			c.MailRetryMin, c.MailRetryMax, c.MailGiveUp, mailer.DefaultRetryMin, mailer.DefaultRetryMax, mailer.DefaultGiveUp)
	}
	if got := acmeLimits(c); got != web.DefaultACMELimits {
		t.Errorf("the ACME settings default to %+v, web.DefaultACMELimits is %+v", got, web.DefaultACMELimits)
	}
}
