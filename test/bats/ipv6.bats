#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# IPv6: a listen list with an IPv4 and an IPv6 loopback address; the seed's
# client over /dev/tcp/::1/PORT in bash and ksh93; the per-address limits
# count an IPv6 client on its /64 (lineproto.LimitKey, tested directly in
# Go, since ::1 is the only IPv6 address a test may use).

load helpers

setup_file() {
	export KEYCHEST_LIMIT_KEYS_PER_IP_HOUR=3
	BATS_KEYCHEST_LISTEN='127.0.0.1:0,[::1]:0' start_server
	local v6
	v6=$(grep -o '"\[::1\]:[0-9]*"' "$SERVER_LOG" | head -n 1 | tr -d '"')
	export V6PORT=${v6##*:}
}

teardown_file() {
	stop_server
}

KEY_RE='^data [0-9a-f]{8}(-[0-9a-f]{8}){4}$'

@test "both addresses of the listen list are served" {
	[ "$HOST" = 127.0.0.1 ]
	[ -n "$V6PORT" ] && [ "$V6PORT" != "$PORT" ]
	HOST=::1 PORT=$V6PORT run in_shell bash send_once.sh 'command ping'
	[ "$output" = "status ok 200 pong" ]
	run in_shell bash send_once.sh 'command ping'
	[ "$output" = "status ok 200 pong" ]
}

@test "seed: 'command apikey' over /dev/tcp/::1/PORT, stored with created_ip ::1 (bash, ksh93)" {
	for sh in bash ksh93; do
		HOST=::1 PORT=$V6PORT run in_shell "$sh" seed_apikey.sh
		echo "$sh: $output"
		[[ $output =~ $KEY_RE ]]
		key=${output#data }
		[ "$(sql "SELECT host(created_ip) FROM api_keys WHERE key_hash = sha256(convert_to('$key', 'UTF8'))")" = "::1" ]
	done
	grep -q '"remote":"::1","verb":"apikey","status":200' "$SERVER_LOG"
}

@test "the key limit counts the ::1 client on its own; IPv4 still gets keys" {
	for _ in 1 2 3 4; do
		HOST=::1 PORT=$V6PORT run in_shell bash send_once.sh 'command apikey'
		[[ $output == "status error 429"* ]] && break
	done
	echo "$output"
	[[ $output == "status error 429 too many new keys from ::/64; retry in "* ]] # an IPv6 client counts by its /64
	[ "$(sql "SELECT count(*) FROM api_keys WHERE created_ip = '::1'")" = 3 ]
	grep -q '"remote":"::1","verb":"apikey","status":429' "$SERVER_LOG"
	run in_shell bash send_once.sh 'command apikey'
	[[ ${lines[0]} =~ $KEY_RE ]]
}
