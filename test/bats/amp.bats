#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# keychest-amp, the ACME proxy, with Debian's real certbot: through it to
# Pebble with https:// and http:// proxy URLs, a failing challenge, a
# tunnelled host and the tunnels refused, keychest-lined down and back, and
# SIGTERM.

load helpers

PY=/usr/bin/python3 # certbot's own Python: always there with certbot

# pebble_for NAME ALWAYS_VALID starts a Pebble for the proxy to intercept,
# with DNS through a loopback port where nothing answers (so a name that
# must really be validated fails, and nothing leaves the host), and sets
# NAME_PORT and NAME_PID.
pebble_for() {
	local name=$1 valid=$2 dir=$BATS_FILE_TMPDIR/pebble-$1 port
	local certs
	certs=$(go env GOMODCACHE)/github.com/letsencrypt/pebble/v2@v2.10.1/test/certs
	mkdir -p "$dir"
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		cat >"$dir/config.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$port", "managementListenAddress": "127.0.0.1:$(free_port)",
  "certificate": "$certs/localhost/cert.pem", "privateKey": "$certs/localhost/key.pem",
  "httpPort": $(free_port), "tlsPort": $(free_port), "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
		PEBBLE_VA_ALWAYS_VALID=$valid PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
			"$ROOT/.local/bin/pebble" -config "$dir/config.json" -dnsserver "127.0.0.1:$(free_port)" >"$dir/pebble.log" 2>&1 3>&- &
		local pid=$!
		if wait_port "$port"; then
			eval "${name}_PORT=$port ${name}_PID=$pid"
			export "${name}_PORT" "${name}_PID"
			export PEBBLE_CA=$certs/pebble.minica.pem
			return 0
		fi
		kill "$pid" 2>/dev/null || true
	done
	cat "$dir/pebble.log" >&2
	return 1
}

# lined_again starts keychest-lined on the addresses it had, same database.
lined_again() {
	KEYCHEST_DATABASE_URL=$DB_URL KEYCHEST_LISTEN=$HOST:$PORT KEYCHEST_HTTP_LISTEN=$WEB KEYCHEST_QUIET_PERIOD=25ms \
		"$ROOT/bin/keychest-lined" >>"$SERVER_LOG" 2>&1 3>&- &
	export SERVER_PID=$!
	echo "$SERVER_PID" >"$BATS_FILE_TMPDIR/lined.pid" # for teardown_file, which does not see this export
	wait_port "$PORT"
}

setup_file() {
	start_server
	export WEB
	WEB=$(grep -o '"http":"[^"]*"' "$SERVER_LOG" | head -n 1 | cut -d'"' -f4)
	pebble_for OK 1
	pebble_for BAD 0
	tls_server_on_127_0_0_2
	export AMP_PORT AMP_ETC=$BATS_FILE_TMPDIR/etc AMP_LOG=$BATS_FILE_TMPDIR/audit.json AMP_OPS=$BATS_FILE_TMPDIR/amp.log
	AMP_PORT=$(free_port)
	# Tunnels: to 443 and two loopback ports, on loopback only; names are
	# looked up in /etc/hosts and then a loopback port where nothing answers.
	KEYCHESTAMP_LINED=$HOST:$PORT KEYCHESTAMP_API=http://$WEB \
		"$ROOT/bin/keychest-amp" -p "$AMP_PORT" -e "$AMP_ETC" -f "$AMP_LOG" -l debug --email amp-owner@example.org \
		--acme-host "localhost:$OK_PORT" --acme-host "localhost:$BAD_PORT" --upstream-ca "$PEBBLE_CA" \
		--tunnel-ports "443,$OK_PORT,$TUN_PORT" --tunnel-nets 127.0.0.0/8 --resolver "127.0.0.1:$(free_port)" >"$AMP_OPS" 2>&1 3>&- &
	export AMP_PID=$!
	wait_port "$AMP_PORT"
	# Only a claimed key of a confirmed account may post events: the owner
	# confirms the account the proxy's key was claimed for.
	for _ in $(seq 1 200); do
		[ "$(keys_of amp-owner@example.org)" = 1 ] && break
		sleep 0.05
	done
	KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" confirm --email amp-owner@example.org >/dev/null
	# The root, as the seed fetches it: a plain GET through the proxy.
	export AMP_ROOT=$BATS_FILE_TMPDIR/amp-root.pem
	exec 5<>"/dev/tcp/127.0.0.1/$AMP_PORT"
	printf 'GET http://amp.keychest.invalid/ HTTP/1.1\r\nHost: amp.keychest.invalid\r\n\r\n' >&5
	sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' <&5 >"$AMP_ROOT"
	exec 5<&-
}

# tls_server_on_127_0_0_2 starts an openssl s_server with Pebble's
# localhost certificate on 127.0.0.2 (a loopback address that is no ACME
# host's), and sets TUN_PORT and TUN_PID.
tls_server_on_127_0_0_2() {
	local certs
	certs=$(go env GOMODCACHE)/github.com/letsencrypt/pebble/v2@v2.10.1/test/certs
	export TUN_PORT TUN_PID
	TUN_PORT=$(free_port)
	openssl s_server -quiet -accept "127.0.0.2:$TUN_PORT" -cert "$certs/localhost/cert.pem" -key "$certs/localhost/key.pem" \
		</dev/null >/dev/null 2>&1 3>&- &
	TUN_PID=$!
	for _ in $(seq 1 200); do
		(exec 9<>"/dev/tcp/127.0.0.2/$TUN_PORT") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# stop_pid PID sends SIGTERM to a process of setup_file (not a child of the
# test's shell) and waits until it is gone.
stop_pid() {
	kill -TERM "$1"
	for _ in $(seq 1 200); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

teardown_file() {
	kill "$AMP_PID" "$OK_PID" "$BAD_PID" "$TUN_PID" 2>/dev/null || true
	stop_pid "$(cat "$BATS_FILE_TMPDIR/lined.pid" 2>/dev/null || echo "$SERVER_PID")" || true
	psql -q "$KEYCHEST_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
}

# certbot_via SCHEME PEBBLE_PORT ARGS... runs certbot through the proxy.
certbot_via() {
	local scheme=$1 port=$2 base=$BATS_FILE_TMPDIR/certbot
	shift 2
	mkdir -p "$base/www"
	HTTPS_PROXY=$scheme://127.0.0.1:$AMP_PORT REQUESTS_CA_BUNDLE=$AMP_ROOT \
		certbot --non-interactive --server "https://localhost:$port/dir" --config-dir "$base/etc" --work-dir "$base/work" \
		--logs-dir "$base/logs" --agree-tos --email certbot@example.org --no-eff-email "$@"
}

# journal_check MSG... fails unless the local log holds each MSG, every
# line has the seed's envelope filled, and each message its params.
journal_check() {
	"$PY" - "$AMP_LOG" "$@" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
want = sys.argv[2:]
envelope = ["msg", "params", "time", "proxy", "id", "host", "ip", "version", "backlog", "log_time"]
common = ["epoch", "client", "server", "agent", "code"]
fields = {"new-acct": ["contact", "email", "account", "status"], "new-order": ["domains", "authz", "finalize", "account", "order"],
          "auth": ["account", "authz", "status", "expires", "identifier"], "chall": ["account", "chall", "status"],
          "order": ["account", "status", "identifiers", "finalize"], "final": ["account", "status"], "revoke-cert": ["account"]}
bad = []
ids = [l["id"] for l in lines]
if ids != sorted(set(ids)): bad.append("ids not strictly increasing")
for l in lines:
    for k in envelope:
        if k not in l or l[k] in ("", None): bad.append(f"{l.get('id')}: envelope {k} empty")
    for k in common + fields.get(l["msg"], []):
        if l["params"].get(k) in ("", None, [], {}): bad.append(f"{l['id']} {l['msg']}: {k} empty")
    if not l["proxy"].endswith("@amp.keychest.net") or "CertbotACMEClient" not in l["params"]["agent"]:
        bad.append(f"{l['id']}: proxy {l['proxy']} agent {l['params']['agent']}")
seen = {l["msg"] for l in lines}
bad += [f"no {m}" for m in want if m not in seen]
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
}

# events_arrived waits until keychest-lined holds exactly the ids of the
# local log, once each.
events_arrived() {
	local want got
	want=$("$PY" -c 'import json,sys; print(" ".join(str(json.loads(l)["id"]) for l in open(sys.argv[1])))' "$AMP_LOG")
	for _ in $(seq 1 400); do
		got=$(sql "SELECT string_agg(id::text, ' ' ORDER BY id) FROM acme_events")
		[ "$got" = "$want" ] && return 0
		sleep 0.05
	done
	echo "want ids: $want" >&2
	echo "got ids:  $got" >&2
	return 1
}

amp_key() {
	"$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["apikey"])' "$AMP_ETC/amp.json"
}

@test "amp: certbot through an https:// proxy URL gets a certificate; the log has every message with the seed's fields; the names are registered" {
	run certbot_via https "$OK_PORT" certonly --webroot -w "$BATS_FILE_TMPDIR/certbot/www" -d one.example -d www.one.example
	echo "$output"
	[ "$status" -eq 0 ]
	run journal_check directory new-nonce new-acct new-order auth chall order final
	echo "$output"
	[ "$status" -eq 0 ]
	events_arrived
	[ "$(domains_of_key "$(amp_key)")" = "one.example www.one.example" ]
	[ "$(keys_of amp-owner@example.org)" = 1 ]
	[ "$(stat -c %a "$AMP_ETC/amp.json")" = 600 ]
	[ "$(stat -c %a "$AMP_ETC/ca.key")" = 600 ]
}

@test "amp: certbot through an http:// proxy URL, and a revocation" {
	run certbot_via http "$OK_PORT" certonly --webroot -w "$BATS_FILE_TMPDIR/certbot/www" -d two.example
	echo "$output"
	[ "$status" -eq 0 ]
	run certbot_via http "$OK_PORT" revoke --cert-name two.example --no-delete-after-revoke
	echo "$output"
	[ "$status" -eq 0 ]
	run journal_check revoke-cert
	echo "$output"
	[ "$status" -eq 0 ]
	events_arrived
	[ "$(domains_of_key "$(amp_key)")" = "one.example two.example www.one.example" ]
}

# add_domain KEY NAME registers NAME for KEY over the line protocol.
add_domain() {
	exec 6<>"/dev/tcp/$HOST/$PORT"
	echo -ne "command add domain $2 apikey $1" >&6
	dd bs=1000 count=1 <&6 2>/dev/null
	exec 6<&-
}

@test "amp: a failing challenge gives auth and chall lines with status invalid and the CA's detail" {
	# Events touch only the names the account holds: the owner registered
	# this one before its first certificate.
	run add_domain "$(amp_key)" fail.example
	[[ $output == "status ok 200 domain fail.example:443 added"* ]]
	run certbot_via https "$BAD_PORT" certonly --webroot -w "$BATS_FILE_TMPDIR/certbot/www" -d fail.example
	[ "$status" -ne 0 ]
	"$PY" - "$AMP_LOG" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
bad = [l for l in lines if l["msg"] in ("auth", "chall") and l["params"]["status"] == "invalid"]
msgs = {l["msg"] for l in bad}
assert msgs == {"auth", "chall"}, msgs
for l in bad:
    e = l["params"]["error"]
    assert e["type"].startswith("urn:ietf:params:acme:error:") and e["detail"], l
assert any(l["params"].get("identifier", {}).get("value") == "fail.example" for l in bad if l["msg"] == "auth")
PY
	events_arrived
	[ "$(sql "SELECT count(*) FROM acme_events WHERE params->>'status' = 'invalid' AND msg IN ('auth', 'chall')")" -ge 2 ]
	# ...and a finding, stored with the events, that the operator sees.
	run env KEYCHEST_DATABASE_URL="$DB_URL" "$ROOT/bin/keychest-lined" findings --open
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ fail\.example:443\ +acme_invalid\ +warning\ .*went\ invalid\ at\ localhost:$BAD_PORT:\ [a-zA-Z]+:\  ]]
	run env KEYCHEST_DATABASE_URL="$DB_URL" "$ROOT/bin/keychest-lined" acme
	echo "$output"
	[ "$status" -eq 0 ]
	local err
	err=$(sql "SELECT error FROM acme_domains WHERE name = 'fail.example'")
	[ -n "$err" ]
	[[ "$output" == *"fail.example "*"$err"* ]]
}

@test "amp: a host off the ACME list is tunnelled: its certificate is the upstream's" {
	# 127.0.0.2 is no ACME host's address; TUN_PORT is in --tunnel-ports and
	# 127.0.0.0/8 in --tunnel-nets.
	run bash -c "openssl s_client -proxy 127.0.0.1:$AMP_PORT -connect 127.0.0.2:$TUN_PORT -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -issuer"
	echo "$output"
	[[ $output == *"minica root ca"* ]]
	# On the list, with or without the trailing dot: the proxy's own leaf.
	for host in localhost localhost. LOCALHOST.; do
		run bash -c "openssl s_client -proxy 127.0.0.1:$AMP_PORT -connect $host:$OK_PORT -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -issuer"
		echo "$host: $output"
		[[ $output == *"keychest-amp root"* ]]
	done
}

# connect_status TARGET prints the status line and text of the proxy's
# answer to CONNECT TARGET.
connect_status() {
	exec 5<>"/dev/tcp/127.0.0.1/$AMP_PORT"
	printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$1" "$1" >&5
	timeout 5 cat <&5 | tr -d '\r' | sed -n '1p;$p'
	exec 5<&-
}

@test "amp: tunnels are refused to an ACME host's address, to ports off --tunnel-ports and to addresses off --tunnel-nets" {
	# 127.0.0.1:OK_PORT is Pebble, but only localhost:OK_PORT is on the list:
	# tunnelled, its traffic would pass unseen.
	run connect_status "127.0.0.1:$OK_PORT"
	echo "$output"
	[[ ${lines[0]} == "HTTP/1.1 403 Forbidden" && ${lines[1]} == *"address of ACME host localhost"* ]]
	# keychest-lined's web port: not in --tunnel-ports.
	run connect_status "$WEB"
	echo "$output"
	[[ ${lines[0]} == "HTTP/1.1 403 Forbidden" && ${lines[1]} == *"port not in --tunnel-ports"* ]]
	# The metadata address and a private one, on 443: not in --tunnel-nets
	# (refused before any dial).
	for target in 169.254.169.254:443 10.0.0.1:443 '[::ffff:169.254.169.254]:443' '[fe80::1]:443'; do
		run connect_status "$target"
		echo "$target: $output"
		[[ ${lines[0]} == "HTTP/1.1 403 Forbidden" && ${lines[1]} == *"not a public address"* ]]
	done
	grep -q '"code":"AMP0406"' "$AMP_OPS"
	grep -q '"code":"AMP0407"' "$AMP_OPS"
}

@test "amp: keychest-lined down during certbot: issuance succeeds, the backlog grows, and every event arrives once when it is back" {
	stop_pid "$SERVER_PID"
	before=$(wc -l <"$AMP_LOG")
	run certbot_via https "$OK_PORT" certonly --webroot -w "$BATS_FILE_TMPDIR/certbot/www" -d three.example
	echo "$output"
	[ "$status" -eq 0 ]
	backlogs=$(tail -n +"$((before + 1))" "$AMP_LOG" | "$PY" -c 'import json,sys; print(" ".join(str(json.loads(l)["backlog"]) for l in sys.stdin))')
	echo "backlogs: $backlogs"
	"$PY" -c 'import sys; b=[int(x) for x in sys.argv[1:]]; assert len(b) > 3 and b == sorted(b) and b[-1] >= len(b) - 1, b' $backlogs
	lined_again
	events_arrived
	[ "$(sql "SELECT count(*) FROM acme_events")" = "$(wc -l <"$AMP_LOG")" ]
	[[ "$(domains_of_key "$(amp_key)")" == *three.example* ]]
	grep -q '"code":"AMP0503"' "$AMP_OPS"
}

@test "amp: SIGTERM drains, flushes the log and exits 0; a restart goes on with higher ids" {
	stop_pid "$AMP_PID"
	last=$(tail -n 1 "$AMP_LOG" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
	KEYCHESTAMP_NOAPI=1 "$ROOT/bin/keychest-amp" -p "$AMP_PORT" -e "$AMP_ETC" -f "$AMP_LOG" \
		--acme-host "localhost:$OK_PORT" --upstream-ca "$PEBBLE_CA" >>"$AMP_OPS" 2>&1 3>&- &
	pid=$!
	wait_port "$AMP_PORT"
	run certbot_via https "$OK_PORT" certonly --webroot -w "$BATS_FILE_TMPDIR/certbot/www" -d four.example
	[ "$status" -eq 0 ]
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	[ "$(grep -c '"code":"AMP0011"' "$AMP_OPS")" = 2 ]
	[ "$(tail -c 1 "$AMP_LOG" | od -An -c | tr -d ' ')" = '\n' ]
	run journal_check
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(tail -n 1 "$AMP_LOG" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["id"])')" -gt "$last" ]
}
