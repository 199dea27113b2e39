// SPDX-License-Identifier: Apache-2.0

package main

import (
	"testing"

	"github.com/kelseyhightower/envconfig"

	"github.com/keychest/keychest-lined/finding"
)

// KEYCHEST_ALERT_BATCH's default (a struct tag cannot name a constant) is
// finding.DefaultAlertBatch, the one the monitor and store fall back to.
func TestAlertBatchDefaultIsFindings(t *testing.T) {
	var mc MonitorConfig
	if err := envconfig.Process("KEYCHEST_TEST_UNSET", &mc); err != nil {
		t.Fatal(err)
	}
	if mc.AlertBatch != finding.DefaultAlertBatch {
		t.Errorf("KEYCHEST_ALERT_BATCH defaults to %s, finding.DefaultAlertBatch is %s", mc.AlertBatch, finding.DefaultAlertBatch)
	}
}
