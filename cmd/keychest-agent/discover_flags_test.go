// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strings"
	"testing"
	"time"
)

func TestDiscoverEveryFlag(t *testing.T) {
	var errs strings.Builder
	none := func(string) string { return "" }
	if cfg, err := parseFlags("run", []string{"--server", "https://k"}, none, &errs); err != nil || cfg.DiscoverEvery != 6*time.Hour {
		t.Errorf("default: %v %v", cfg.DiscoverEvery, err)
	}
	env := func(k string) string { return map[string]string{"KEYCHESTAGENT_DISCOVER_EVERY": "30m"}[k] }
	if cfg, err := parseFlags("run", []string{"--server", "https://k"}, env, &errs); err != nil || cfg.DiscoverEvery != 30*time.Minute {
		t.Errorf("from the environment: %v %v", cfg.DiscoverEvery, err)
	}
	for _, v := range []string{"0s", "-1h", "often"} {
		if _, err := parseFlags("run", []string{"--server", "https://k", "--discover-every", v}, none, &errs); err == nil {
			t.Errorf("--discover-every %s accepted", v)
		}
	}
}
