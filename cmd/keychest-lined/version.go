// SPDX-License-Identifier: Apache-2.0

package main

import (
	"runtime/debug"
)

// version is the server's version. make build stamps it from git describe
// with -ldflags "-X main.version=..."; without the stamp, init takes it
// from the build information Go embeds in the binary.
var version = ""

func init() {
	if version == "" {
		version = versionFromBuildInfo(debug.ReadBuildInfo())
	}
}

// versionFromBuildInfo is the module's version when the binary was built
// from a released module (go install ...@v1.2.3); else "dev-" and the
// commit when Go recorded one ("-dirty" if the tree had changes); else "dev".
func versionFromBuildInfo(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		return "dev"
	}
	v := "dev-" + rev[:min(12, len(rev))]
	if settings["vcs.modified"] == "true" {
		v += "-dirty"
	}
	return v
}
