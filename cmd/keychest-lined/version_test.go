// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	rev := "d9c6406be834fb0189c5c87897a3ac9a1b16381f"
	info := func(main string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/keychest/keychest-lined", Version: main}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	for _, c := range []struct {
		info *debug.BuildInfo
		ok   bool
		want string
	}{
		{info("v1.4.0"), true, "v1.4.0"},
		{info("v0.0.0-20261123102959-d9c6406be834+dirty", "vcs.revision", rev), true, "v0.0.0-20261123102959-d9c6406be834+dirty"},
		{info("(devel)", "vcs.revision", rev, "vcs.modified", "false"), true, "dev-d9c6406be834"},
		{info("(devel)", "vcs.revision", rev, "vcs.modified", "true"), true, "dev-d9c6406be834-dirty"},
		{info("(devel)"), true, "dev"},
		{nil, false, "dev"},
	} {
		if got := versionFromBuildInfo(c.info, c.ok); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.info, got, c.want)
		}
	}
}

// TestVersionEverywhere: the stamped version is what "command version"
// answers and what the build-info gauge in /metrics carries.
func TestVersionEverywhere(t *testing.T) {
	saved := version
	version = "v9.8.7-test"
	t.Cleanup(func() { version = saved })
	a := startApp(t, nil)
	if data := a.dial(t).must("command version", "status ok 200"); data != "keychest-lined v9.8.7-test" {
		t.Errorf("command version: %q", data)
	}
	_, body := get(t, a.webURL+"/metrics")
	want := fmt.Sprintf(`keychest_build_info{goversion=%q,version="v9.8.7-test"} 1`, runtime.Version())
	if !strings.Contains(body, want+"\n") {
		t.Errorf("no %s in /metrics", want)
	}
}
