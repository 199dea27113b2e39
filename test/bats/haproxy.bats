#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# Debian's HAProxy in front of the server, sending the PROXY protocol
# header v2 (send-proxy-v2) and v1 (send-proxy), with the seed's client in
# bash and ksh93 going through it. The addresses, all on loopback:
#   127.0.0.1  the server, and the seed's client: bash's /dev/tcp cannot
#              choose a source address, so a client connecting to
#              127.0.0.3 comes from 127.0.0.1, the kernel's source for
#              127.0.0.0/8
#   127.0.0.3  HAProxy's listeners
#   127.0.0.4  HAProxy's connections to the server (`source 127.0.0.4`),
#              the only address in KEYCHEST_PROXY_FROM
#   127.0.0.5  a client of the server's own, not through HAProxy (perl,
#              which can bind a source address)
# The server must log, limit and store 127.0.0.1, never 127.0.0.4.

load helpers
bats_require_minimum_version 1.5.0

HAPROXY=/usr/sbin/haproxy
CLIENT=127.0.0.1 FRONT=127.0.0.3 BALANCER=127.0.0.4 OTHER=127.0.0.5
KEY_RE='^data [0-9a-f]{8}(-[0-9a-f]{8}){4}$'

setup_file() {
	# Not a skip: CI installs haproxy with scripts/deps.sh test.
	[ -x "$HAPROXY" ] || {
		echo "haproxy is missing: run scripts/deps.sh test as root" >&2
		return 1
	}
}

setup() {
	export KEYCHEST_PROXY_FROM=$BALANCER/32 KEYCHEST_LIMIT_KEYS_PER_IP_HOUR=2
	start_server
	start_haproxy
}

teardown() {
	local rc=0
	stop_haproxy || rc=1
	stop_server || rc=1
	return $rc
}

# start_haproxy runs HAProxy in the foreground in front of the server and
# sets HAPROXY_PID, V2PORT (send-proxy-v2) and V1PORT (send-proxy).
start_haproxy() {
	local dir=$BATS_TEST_TMPDIR/haproxy ready
	mkdir -p "$dir"
	# A port can be taken between the check and HAProxy's bind: try again.
	for _ in 1 2 3 4 5; do
		V2PORT=$(free_port) V1PORT=$(free_port) ready=$(free_port)
		# "ready" comes last: HAProxy binds in this order, and exits if
		# any bind fails, so once it accepts, the others listen too.
		cat >"$dir/haproxy.cfg" <<CFG
global
    nbthread 1

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

listen lined_v2
    bind $FRONT:$V2PORT
    server lined1 $HOST:$PORT send-proxy-v2 check source $BALANCER

listen lined_v1
    bind $FRONT:$V1PORT
    server lined1 $HOST:$PORT send-proxy check source $BALANCER

frontend ready
    bind $FRONT:$ready
    tcp-request connection reject
CFG
		"$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 3>&- &
		HAPROXY_PID=$!
		for _ in $(seq 1 200); do
			(exec 9<>"/dev/tcp/$FRONT/$ready") 2>/dev/null && return 0
			kill -0 "$HAPROXY_PID" 2>/dev/null || break
			sleep 0.05
		done
		stop_haproxy
	done
	cat "$dir/haproxy.log" >&2
	return 1
}

# stop_haproxy stops HAProxy and checks that no process of it remains.
stop_haproxy() {
	kill -TERM "$HAPROXY_PID" 2>/dev/null || true
	wait "$HAPROXY_PID" || true
	if pgrep -f "$BATS_TEST_TMPDIR/haproxy/haproxy.cfg" >&2; then
		echo "haproxy still runs" >&2
		return 1
	fi
}

# through VERSION SHELL SCRIPT ARGS... runs a client script in SHELL
# against HAProxy's listener that sends the header VERSION (v1, v2).
through() {
	local port=$V2PORT
	[ "$1" = v1 ] && port=$V1PORT
	HOST=$FRONT PORT=$port in_shell "${@:2}"
}

# send_from SRC PAYLOAD connects straight to the server from the loopback
# address SRC, sends PAYLOAD and prints one read of the reply, as the
# seed's dd does (perl-base is part of every Debian).
send_from() {
	perl -MSocket -e '
		my ($src, $host, $port, $msg) = @ARGV;
		socket(S, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
		bind(S, sockaddr_in(0, inet_aton($src))) or die "bind $src: $!";
		connect(S, sockaddr_in($port, inet_aton($host))) or die "connect: $!";
		syswrite(S, $msg) or die "write: $!";
		defined(sysread(S, my $buf, 1000)) or die "read: $!";
		print $buf;' "$1" "$HOST" "$PORT" "$2"
}

# ip_of_key KEY COLUMN prints an inet column of the key's row.
ip_of_key() {
	sql "SELECT host($2) FROM api_keys WHERE key_hash = sha256(convert_to('$1', 'UTF8'))"
}

# logged VERB STATUS REMOTE counts the server's LIN0001 entries for it.
logged() {
	grep '"code":"LIN0001"' "$SERVER_LOG" | grep -c "\"remote\":\"$3\",\"verb\":\"$1\",\"status\":$2," || true
}

# logged_n N VERB STATUS REMOTE waits up to 2 s for N such entries and
# prints the count: the server's log is written asynchronously (a diode
# that flushes every 10 ms), so an entry may land after its reply.
logged_n() {
	local n
	for _ in $(seq 1 40); do
		n=$(logged "$2" "$3" "$4")
		[ "$n" -ge "$1" ] && break
		sleep 0.05
	done
	echo "$n"
}

# keeps_client_address VERSION: a key, a claim and two adds (bash), and a
# key (ksh93), through HAProxy; every stored address and log entry is the
# client's.
keeps_client_address() {
	local v=$1
	run through "$v" bash flow.sh "ops@example.com" "$v.example.org"
	echo "bash: $output"
	[ "$status" -eq 0 ]
	[[ ${lines[0]} =~ $KEY_RE ]]
	[ "${lines[1]}" = "status ok 200 new api key" ]
	[[ ${lines[2]} == "status ok 200 claimed"* ]]
	[[ ${lines[3]} == "status ok 200 domain $v.example.org:443 added"* ]]
	local key=${lines[5]#key=}
	[ "$(ip_of_key "$key" created_ip)" = $CLIENT ]
	[ "$(ip_of_key "$key" claimed_ip)" = $CLIENT ]
	[ "$(sql "SELECT host(created_ip) FROM accounts WHERE email = 'ops@example.com'")" = $CLIENT ]
	[ "$(sql "SELECT host(d.created_ip) FROM domains d JOIN api_keys k ON k.id = d.api_key_id
		WHERE k.key_hash = sha256(convert_to('$key', 'UTF8')) AND d.name = '$v.example.org'")" = $CLIENT ]

	run through "$v" ksh93 seed_apikey.sh
	echo "ksh93: $output"
	[[ $output =~ $KEY_RE ]]
	[ "$(ip_of_key "${output#data }" created_ip)" = $CLIENT ]

	[ "$(logged_n 2 apikey 200 $CLIENT)" = 2 ]
	[ "$(logged_n 1 claim 200 $CLIENT)" = 1 ]
	[ "$(logged_n 2 add 200 $CLIENT)" = 2 ]
	run ! grep "\"remote\":\"$BALANCER\"" "$SERVER_LOG"
	[ "$(sql "SELECT count(*) FROM api_keys WHERE created_ip <> '$CLIENT'")" = 0 ]
}

# limits_client_address VERSION: the key limit (2 an hour) is reached by
# the client through HAProxy and holds for it directly too, while
# HAProxy's own address and another client still get keys.
limits_client_address() {
	local v=$1 sh
	for sh in bash ksh93; do
		run through "$v" "$sh" seed_apikey.sh
		echo "$sh: $output"
		[[ $output =~ $KEY_RE ]]
	done
	run through "$v" bash send_once.sh 'command apikey'
	echo "third: $output"
	[[ $output == "status error 429 too many new keys from $CLIENT; retry in "* ]]
	[ "$(logged_n 1 apikey 429 $CLIENT)" = 1 ]

	run in_shell bash send_once.sh 'command apikey' # straight from 127.0.0.1
	echo "direct from $CLIENT: $output"
	[[ $output == "status error 429 too many new keys from $CLIENT; retry in "* ]]

	for src in $BALANCER $OTHER; do
		run send_from "$src" 'command apikey'
		echo "direct from $src: $output"
		[[ ${lines[0]} =~ $KEY_RE ]]
		[ "$(ip_of_key "${lines[0]#data }" created_ip)" = "$src" ]
	done
	[ "$(sql "SELECT count(*) FROM api_keys WHERE created_ip = '$CLIENT'")" = 2 ]
}

@test "send-proxy-v2: the client's address, not HAProxy's, is logged and stored for its key, claim and domain (bash, ksh93)" {
	keeps_client_address v2
}

@test "send-proxy (v1): the client's address, not HAProxy's, is logged and stored for its key, claim and domain (bash, ksh93)" {
	keeps_client_address v1
}

@test "send-proxy-v2: the key limit counts the client's address, not HAProxy's (bash, ksh93)" {
	limits_client_address v2
}

@test "send-proxy (v1): the key limit counts the client's address, not HAProxy's (bash, ksh93)" {
	limits_client_address v1
}

@test "a client behind HAProxy cannot pass another address with a PROXY line of its own (bash, ksh93)" {
	for sh in bash ksh93; do
		run through v2 "$sh" send_each.sh 'PROXY TCP4 192.0.2.9 127.0.0.1 5555 10023\r\n' 'command apikey'
		echo "$sh: $output"
		[[ ${lines[0]} == "status error 400 "* ]] # a line like any other, not a header
		[[ ${lines[1]} =~ $KEY_RE ]]
		[ "$(ip_of_key "${lines[1]#data }" created_ip)" = $CLIENT ]
	done
	[ "$(sql "SELECT count(*) FROM api_keys WHERE created_ip <> '$CLIENT'")" = 0 ]
	run ! grep '"remote":"192.0.2.9"' "$SERVER_LOG"
}

# v2_header prints a PROXY v2 header for TCP over IPv4 from 192.0.2.1:5555
# to 127.0.0.1:10023, its bytes as printf %b octal escapes.
v2_header() {
	local b
	for b in 0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a 21 11 00 0c c0 00 02 01 7f 00 00 01 15 b3 27 27; do
		printf '\\0%03o' "0x$b"
	done
}

@test "a PROXY header (v1, v2) straight from an untrusted address is a 400 and a close; others are still served (bash, ksh93)" {
	local v1='PROXY TCP4 192.0.2.1 127.0.0.1 5555 10023\r\ncommand apikey' v2
	v2="$(v2_header)command apikey"
	for sh in bash ksh93; do
		for hdr in "$v1" "$v2"; do
			run in_shell "$sh" send_to_eof.sh "$hdr"
			echo "$sh: $output"
			[ "$status" -eq 0 ] # the server closed the connection
			[ "$output" = "status error 400 PROXY header from $CLIENT, which is not a trusted proxy" ]
		done
	done
	[ "$(sql "SELECT count(*) FROM api_keys")" = 0 ]
	[ "$(logged_n 4 PROXY 400 $CLIENT)" = 4 ]
	run ! grep '"remote":"192.0.2.1"' "$SERVER_LOG"
	run send_from $OTHER 'command ping'
	[ "$output" = "status ok 200 pong" ]
}

@test "the first bytes of a PROXY signature from an untrusted address are a bad line, answered at once, not a header waited for (bash, ksh93)" {
	for sh in bash ksh93; do
		run timeout 5 "$sh" "$ROOT/test/bats/clients/send_once.sh" 'PROX'
		echo "$sh: $output"
		[ "$status" -eq 0 ]
		[ "$output" = 'status error 400 name "PROX" has no value' ]
	done
}
