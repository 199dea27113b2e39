#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# The monitor in the real binary: a confirmed account adds three names
# served by tlsfarm (TLS on 127.0.0.2-4, names resolved by its DNS server
# on loopback); "command cert" answers for each within 60 s; after a
# certificate is swapped, "command check" shows the new expiry.

load helpers

setup_file() {
	go build -o "$BATS_FILE_TMPDIR/tlsfarm" "$ROOT/test/tlsfarm"
	export FARM_DIR=$BATS_FILE_TMPDIR
	export TLS_PORT=$(free_tcp_port 127.0.0.2)
	export DNS_ADDR=127.0.0.1:$(free_udp_port)
	farm_config "90d 60d12h" "47d 8d12h" "6d 3d12h"
	"$FARM_DIR/tlsfarm" -config "$FARM_DIR/farm.conf" -dns "$DNS_ADDR" -ca "$FARM_DIR/ca.pem" \
		-state "$FARM_DIR/farm.state" 2>"$FARM_DIR/farm.log" &
	export FARM_PID=$!
	wait_for_generation 1
}

teardown_file() {
	kill "$FARM_PID" 2>/dev/null || true
}

setup() {
	export KEYCHEST_MONITOR_RESOLVER=$DNS_ADDR KEYCHEST_MONITOR_CA_FILE=$FARM_DIR/ca.pem
	export KEYCHEST_MONITOR_ALLOW_NETS=127.0.0.0/8 KEYCHEST_MONITOR_CHECK_EVERY=2s
	export KEYCHEST_MONITOR_PORTS=1-65535 # tlsfarm serves on a high port
	start_server
}

teardown() {
	stop_server
}

# farm_config writes one "LIFETIME LEFT" per name: a, b and c.farm.test.
farm_config() {
	local i=2 n
	: >"$FARM_DIR/farm.conf"
	for n in a b c; do
		echo "$n.farm.test 127.0.0.$i:$TLS_PORT $1" >>"$FARM_DIR/farm.conf"
		shift
		i=$((i + 1))
	done
}

wait_for_generation() {
	for _ in $(seq 1 100); do
		grep -qx "generation $1" "$FARM_DIR/farm.state" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$FARM_DIR/farm.log" >&2
	return 1
}

free_tcp_port() {
	python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}

free_udp_port() {
	python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# say sends one line the way the seed's client does and prints the reply.
say() {
	exec 3<>"/dev/tcp/$HOST/$PORT"
	echo -ne "$1" >&3
	dd bs=1000 count=1 <&3 2>/dev/null
	exec 3<&-
}

# cert_until NAME PATTERN: ask "command cert" until the data line matches,
# for at most 60 s; prints the last reply.
cert_until() {
	local reply deadline=$((SECONDS + 60))
	while :; do
		reply=$(say "command cert domain $1:$TLS_PORT apikey $KEY")
		if [[ $reply =~ $2 ]] || [ $SECONDS -ge $deadline ]; then
			echo "$reply"
			return 0
		fi
		sleep 0.5
	done
}

@test "cert answers for three names within 60 s; a swapped certificate shows after check" {
	KEY=$(say "command apikey" | head -n 1 | cut -d' ' -f2)
	say "command claim apikey $KEY email owner@example.com" | grep -q "status ok 200"
	KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" confirm --email owner@example.com
	for n in a b c; do
		run say "command add domain $n.farm.test:$TLS_PORT apikey $KEY"
		[[ $output == "status ok 200 domain $n.farm.test:$TLS_PORT added"* ]]
	done
	start=$SECONDS
	run cert_until a.farm.test "state=ok"
	[[ ${lines[0]} =~ ^data\ state=ok\ expires=[0-9T:Z-]+\ days=60\ issuer=KeyChest_tlsfarm_CA\ addresses=1\ checked=[0-9T:Z-]+\ finding=-\ class=-$ ]]
	[ "${lines[1]}" = "status ok 200 certificate of a.farm.test:$TLS_PORT" ]
	run cert_until b.farm.test "state=warning"
	[[ ${lines[0]} =~ ^data\ state=warning\ .*\ days=8\ .*\ finding=expiry\ class=-$ ]]
	run cert_until c.farm.test "state=ok"
	[[ ${lines[0]} =~ ^data\ state=ok\ .*\ days=3\ issuer= ]]
	[ $((SECONDS - start)) -le 60 ]

	run env KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" certs
	[ "$status" -eq 0 ]
	[[ ${lines[1]} == c.farm.test:$TLS_PORT*ok* ]]
	[[ ${lines[2]} == b.farm.test:$TLS_PORT*warning*expiry ]]
	[[ ${lines[3]} == a.farm.test:$TLS_PORT*ok* ]]

	farm_config "90d 5d12h" "47d 8d12h" "6d 3d12h"
	kill -HUP "$FARM_PID"
	wait_for_generation 2
	run say "command check domain a.farm.test:$TLS_PORT apikey $KEY"
	[ "$output" = "status ok 200 check queued" ]
	run cert_until a.farm.test "days=5 "
	[[ ${lines[0]} =~ ^data\ state=critical\ .*\ days=5\ .*\ finding=expiry\ class=-$ ]]
	run env KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" findings --open
	[[ $output == *a.farm.test:$TLS_PORT*expiry*critical* ]]
	run say "command status apikey $KEY"
	[[ ${lines[0]} == *" problems=2" ]]
}

@test "probe prints one endpoint without storing anything; loopback needs the allow-list" {
	run env KEYCHEST_MONITOR_ALLOW_NETS= "$ROOT/bin/keychest-lined" probe "a.farm.test:$TLS_PORT"
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "a.farm.test:$TLS_PORT  not_allowed"* ]]
	run "$ROOT/bin/keychest-lined" probe --json "b.farm.test:$TLS_PORT"
	[ "$status" -eq 0 ]
	[[ $output == *'"class": "ok"'* && $output == *'"expiry": "warning"'* && $output == *'"issuer_cn": "KeyChest tlsfarm CA"'* ]]
	[ "$(sql 'SELECT count(*) FROM mon_targets')" -eq 0 ]
}

@test "add of a port off KEYCHEST_MONITOR_PORTS gets 400 with the list; the default list refuses 6379" {
	stop_server
	KEYCHEST_MONITOR_PORTS="8443, 443" start_server
	KEY=$(say "command apikey" | head -n 1 | cut -d' ' -f2)
	run say "command add domain a.farm.test:$TLS_PORT apikey $KEY"
	[ "$output" = "status error 400 port $TLS_PORT is not monitored here; allowed ports: 443,8443" ]
	run say "command add domain a.farm.test:8443 apikey $KEY"
	[[ $output == "status ok 200 domain a.farm.test:8443 added"* ]]
	stop_server
	unset KEYCHEST_MONITOR_PORTS
	env -u KEYCHEST_MONITOR_PORTS "$ROOT/bin/keychest-lined" -h 2>&1 | grep -q "KEYCHEST_MONITOR_PORTS.*443,465,636,853,993,995,5061,6443,8443,9443"
	KEYCHEST_MONITOR_PORTS=443,465,636,853,993,995,5061,6443,8443,9443 start_server
	KEY=$(say "command apikey" | head -n 1 | cut -d' ' -f2)
	run say "command add domain example.org:6379 apikey $KEY"
	[[ $output == "status error 400 port 6379 is not monitored here; allowed ports: 443,465,636,853,993,995,5061,6443,8443,9443" ]]
	run env KEYCHEST_MONITOR_PORTS=443 "$ROOT/bin/keychest-lined" probe "a.farm.test:$TLS_PORT"
	[ "$status" -eq 1 ]
	[[ ${lines[0]} == "a.farm.test:$TLS_PORT  not_allowed"* && ${lines[1]} == *"port $TLS_PORT is not in KEYCHEST_MONITOR_PORTS" ]]
	run env KEYCHEST_DATABASE_URL=$DB_URL KEYCHEST_MONITOR_PORTS=20-10 "$ROOT/bin/keychest-lined"
	[ "$status" -ne 0 ]
	[[ $output == *"runs backwards"* ]]
}
