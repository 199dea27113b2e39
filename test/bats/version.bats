#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# make build stamps the version from git describe; the built binary shows
# it in "version", in "command version", in every log entry and in the
# build-info gauge of /metrics.

load helpers

setup_file() {
	start_server
}

teardown_file() {
	stop_server
}

@test "the stamp from git describe is in 'version', 'command version', /metrics and every log entry" {
	want=$(git -C "$ROOT" describe --tags --always --dirty)
	run "$ROOT/bin/keychest-lined" version
	[ "$output" = "keychest-lined $want" ]

	run in_shell bash send_once.sh 'command version'
	echo "$output"
	[ "${lines[0]}" = "data keychest-lined $want" ]

	http=$(grep -o '"http":"[^"]*"' "$SERVER_LOG" | head -n 1 | cut -d'"' -f4)
	exec 4<>"/dev/tcp/${http%:*}/${http##*:}"
	printf 'GET /metrics HTTP/1.0\r\n\r\n' >&4
	run grep '^keychest_build_info' <&4
	exec 4<&-
	echo "$output"
	[[ $output == "keychest_build_info{goversion=\"go"*"\",version=\"$want\"} 1" ]]

	total=$(grep -c '^{' "$SERVER_LOG")
	stamped=$(grep -c "\"version\":\"$want\"" "$SERVER_LOG")
	echo "log entries: $total, with the version: $stamped"
	[ "$total" -ge 2 ]
	[ "$stamped" -eq "$total" ]
}
