#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# The certbot hook and the container entrypoint against the real server and
# PostgreSQL, in bash and ksh93 (/dev/tcp) and busybox sh (nc).

load helpers

setup_file() {
	start_server
}

teardown_file() {
	stop_server
}

@test "hook: SAN names of every lineage, key stored 0600 and reused, claimed by the cli.ini email (bash, ksh93)" {
	for sh in bash ksh93; do
		le=$(certbot_dir "$sh")
		add_lineage "$le" "one-$sh.example" "one-$sh.example" "www.one-$sh.example"
		add_lineage "$le" "two-$sh.example"
		printf 'email = Ops-%s@Example.com\n' "$sh" >"$le/cli.ini"
		run_hook "$sh" "$le"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ $output == *"email Ops-$sh@Example.com (from $le/cli.ini)"* ]]
		[[ $output == *"done: 3 domains registered, 0 refused"*"claimed by Ops-$sh@Example.com"* ]]
		[ "$(stat -c %a "$le/renewal-hooks/keychest_apikey")" = 600 ]
		key=$(cat "$le/renewal-hooks/keychest_apikey")
		[ "$(domains_of_key "$key")" = "one-$sh.example two-$sh.example www.one-$sh.example" ]
		[ "$(keys_of "ops-$sh@example.com")" = 1 ]
		# The whole key never appears in the output.
		[[ $output != *"$key"* ]]
		# A second run reuses the stored key.
		run_hook "$sh" "$le"
		[ "$status" -eq 0 ]
		[[ $output == *"key ${key:0:8}... from $le/renewal-hooks/keychest_apikey"* ]]
		[[ $output != *"command apikey"* ]]
		[ "$(cat "$le/renewal-hooks/keychest_apikey")" = "$key" ]
	done
}

@test "hook: once the account is confirmed, each name added is also checked, in every shell; pending and wildcard names are not" {
	for sh in bash ksh93 dash "busybox sh"; do
		tag=${sh// /-}
		le=$(certbot_dir "$tag")
		add_lineage "$le" "check-$tag.example" "check-$tag.example" "*.check-$tag.example"
		printf 'email = check-%s@example.com\n' "$tag" >"$le/cli.ini"
		run_hook "$sh" "$le"
		[ "$status" -eq 0 ]
		[[ $output != *"command check"* ]] # pending: nothing is watched yet
		KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" confirm --email "check-$tag@example.com" >/dev/null
		run_hook "$sh" "$le"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ $output == *"-> command check domain check-$tag.example apikey "*"<- status ok 200 check queued"* ]]
		[[ $output != *"command check domain *."* ]]
		[ "$(sql "SELECT count(*) FROM mon_targets WHERE name = 'check-$tag.example' AND check_asked_at IS NOT NULL")" = 1 ]
	done
}

@test "hook: a second server claiming onto a confirmed account exits 0; its names stay pending until the owner approves its key" {
	first=$(certbot_dir first)
	add_lineage "$first" first.example first.example
	printf 'email = owner-two@example.com\n' >"$first/cli.ini"
	run_hook bash "$first"
	[ "$status" -eq 0 ]
	KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" confirm --email owner-two@example.com >/dev/null
	second=$(certbot_dir second)
	add_lineage "$second" second.example second.example
	printf 'email = owner-two@example.com\n' >"$second/cli.ini"
	run_hook bash "$second"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"<- status ok 200 claimed for owner-two@example.com; its domains stay pending until the owner confirms by mail"* ]]
	[[ $output == *"<- status ok 200 domain second.example:443 added (pending until the owner confirms by mail)"* ]]
	[[ $output == *"done: 1 domains registered, 0 refused, key "*" claimed by owner-two@example.com; 1 pending until the owner confirms by mail"* ]]
	[[ $output != *"command check"* ]]
	[ "$(sql "SELECT count(*) FROM outbox WHERE kind = 'new_key' AND to_email = 'owner-two@example.com'")" = 1 ]
	key=$(cat "$second/renewal-hooks/keychest_apikey")
	run env KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" approve --key-prefix "${key:0:8}"
	[ "$output" = "approved key ${key:0:8}... (1 domains)" ]
	run_hook bash "$second"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"-> command check domain second.example apikey ${key:0:8}..."*"<- status ok 200 check queued"* ]]
	[[ $output == *"claimed by owner-two@example.com" ]]
}

@test "hook: in deploy/ RENEWED_DOMAINS wins over the lineages; a refused domain does not stop the others" {
	le=$(certbot_dir)
	mv "$le/renewal-hooks/post" "$le/renewal-hooks/deploy"
	add_lineage "$le" lineage.example lineage.example
	run env KEYCHEST_SERVER="$HOST:$PORT" KEYCHEST_GLOBAL_CLI_INI=/nonexistent KEYCHEST_EMAIL=renewed@example.com \
		RENEWED_DOMAINS="r1.example bad..name r2.example" ksh93 "$le/renewal-hooks/deploy/keychest"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *"domains from RENEWED_DOMAINS: r1.example bad..name r2.example"* ]]
	[[ $output == *"<- status error 400 domain has an empty label"* ]]
	[[ $output == *"done: 2 domains registered, 1 refused"* ]]
	[ "$(domains_of_key "$(cat "$le/renewal-hooks/keychest_apikey")")" = "r1.example r2.example" ]
}

@test "hook: the email sources, in order" {
	le=$(certbot_dir)
	add_lineage "$le" order.example
	mkdir -p "$le/accounts/acme.example/directory/abc123"
	printf '{"body": {"contact": ["mailto:regr@example.com"]}, "uri": "x"}\n' >"$le/accounts/acme.example/directory/abc123/regr.json"
	printf '2024-01-01 DEBUG:acme.client:Received response:\n{"contact": ["mailto:log@example.com"], "status": "valid"}\n' >"$le/logs/letsencrypt.log.1"
	printf 'email = cli@example.com\n' >"$le/cli.ini"
	printf 'KEYCHEST_EMAIL="conf@example.com"\n' >"$le/renewal-hooks/post/keychest.conf"
	run_hook bash "$le" KEYCHEST_EMAIL=env@example.com
	[[ $output == *"email env@example.com (from the setting KEYCHEST_EMAIL)"* ]]
	run_hook bash "$le"
	[[ $output == *"email conf@example.com (from $le/renewal-hooks/post/keychest.conf)"* ]]
	rm "$le/renewal-hooks/post/keychest.conf"
	run_hook bash "$le"
	[[ $output == *"email cli@example.com (from $le/cli.ini)"* ]]
	rm "$le/cli.ini"
	printf '# no email here\nemail = global@example.com\n' >"$BATS_TEST_TMPDIR/global.ini"
	run_hook bash "$le" KEYCHEST_GLOBAL_CLI_INI="$BATS_TEST_TMPDIR/global.ini"
	echo "$output"
	[[ $output == *"email global@example.com (from $BATS_TEST_TMPDIR/global.ini)"* ]]
	run_hook bash "$le"
	[[ $output == *"email regr@example.com (from $le/accounts/acme.example/directory/abc123/regr.json)"* ]]
	rm -r "$le/accounts"
	run_hook bash "$le"
	[[ $output == *"email log@example.com (from $le/logs/letsencrypt.log.1)"* ]]
	[ "$(keys_of log@example.com)" = 0 ] # the key was already claimed by env@example.com: 409
	[[ $output == *"<- status error 409 apikey already belongs to another email"* ]]
}

@test "hook: with no email it registers anyway and prints the claim line, which works" {
	le=$(certbot_dir)
	add_lineage "$le" unclaimed.example unclaimed.example
	run_hook bash "$le"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"done: 1 domains registered, 0 refused"*"not claimed"* ]]
	claim=$(printf '%s\n' "$output" | sed -n 's/^keychest:   //p')
	[[ $claim == "exec 3<>/dev/tcp/$HOST/$PORT; "* ]]
	run bash -c "${claim//YOU@EXAMPLE.COM/late@example.com}"
	echo "$output"
	[[ $output == "status ok 200 claimed for late@example.com"* ]]
	[ "$(keys_of late@example.com)" = 1 ]
}

@test "hook: a server that refuses connections or stays silent costs at most the timeout (bash, ksh93, busybox sh)" {
	le=$(certbot_dir)
	add_lineage "$le" down.example
	silent_listener
	for target in 127.0.0.1:1 "127.0.0.1:$SILENT_PORT"; do
		for sh in bash ksh93 "busybox sh"; do
			start=$(date +%s)
			run env KEYCHEST_SERVER="$target" KEYCHEST_TIMEOUT=03 KEYCHEST_NO_REEXEC=1 KEYCHEST_APIKEY=own-key-0123456789 \
				KEYCHEST_GLOBAL_CLI_INI=/nonexistent KEYCHEST_CERTBOT_LOGS=/nonexistent $sh "$le/renewal-hooks/post/keychest"
			took=$(($(date +%s) - start))
			echo "$target $sh: $status after ${took}s: $output"
			[ "$status" -eq 1 ]
			[ "$took" -le 7 ] # 3 s, and the start of the script on a busy machine
			case $target in
			*:1) [[ $output == *"cannot connect to 127.0.0.1:1"* ]] ;;
			*) [[ $output == *"no reply from $target"* || $output == *"gave up: no answer from $target within 3 seconds"* ]] ;;
			esac
		done
	done
	kill "$SILENT_PID"
}

# unaccepting_listener starts a listener whose accept queue is full and
# never drained: the kernel drops new SYNs, so a connect hangs. Sets
# STUCK_PORT and STUCK_PID.
unaccepting_listener() {
	local out=$BATS_TEST_TMPDIR/stuck.port
	perl -MSocket -e 'socket(S, PF_INET, SOCK_STREAM, 0) or die; bind(S, sockaddr_in(0, inet_aton("127.0.0.1"))) or die;
		listen(S, 0) or die; ($p) = sockaddr_in(getsockname(S)); socket(C, PF_INET, SOCK_STREAM, 0) or die;
		connect(C, sockaddr_in($p, inet_aton("127.0.0.1"))) or die; $| = 1; print "$p\n"; sleep 600' >"$out" 3>&- &
	STUCK_PID=$!
	for _ in $(seq 1 100); do
		STUCK_PORT=$(cat "$out")
		[ -n "$STUCK_PORT" ] && return 0
		sleep 0.02
	done
	return 1
}

# session_procs prints the processes still in session SID, from /proc.
session_procs() {
	local stat line
	for stat in /proc/[0-9]*/stat; do
		read -r line <"$stat" 2>/dev/null || continue # a builtin: no process per entry
		# shellcheck disable=SC2086 # the fields after "(comm) ": state ppid pgrp session
		set -- ${line##*) }
		[ "${4:-}" = "$SID" ] && echo "${stat%/stat}: $(tr '\0' ' ' <"${stat%stat}cmdline" 2>/dev/null)"
	done
	return 0
}

# hook_alone SHELL TARGET runs the hook in a session of its own against
# TARGET with a 3 s timeout, then lists in LEFT whatever of that session
# still runs: the hook must reap everything it starts.
hook_alone() {
	local sidfile=$BATS_TEST_TMPDIR/sid
	local start
	start=$(date +%s%N)
	run setsid -w env KEYCHEST_SERVER="$2" KEYCHEST_TIMEOUT=03 KEYCHEST_NO_REEXEC=1 KEYCHEST_APIKEY=own-key-0123456789 \
		KEYCHEST_GLOBAL_CLI_INI=/nonexistent KEYCHEST_CERTBOT_LOGS=/nonexistent \
		sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$sidfile" $1 "$le/renewal-hooks/post/keychest"
	TOOK_MS=$((($(date +%s%N) - start) / 1000000))
	SID=$(cat "$sidfile")
	LEFT=$(session_procs)
}

@test "hook: a server that never answers or never accepts: exit 1 within the timeout, nothing left running (bash, ksh93, dash, busybox sh)" {
	le=$(certbot_dir)
	add_lineage "$le" stuck.example
	silent_listener
	unaccepting_listener
	for target in "127.0.0.1:$SILENT_PORT" "127.0.0.1:$STUCK_PORT"; do
		for sh in bash ksh93 dash "busybox sh"; do
			hook_alone "$sh" "$target"
			echo "$target $sh: $status after ${TOOK_MS} ms: $output; left: ${LEFT:-nothing}"
			[ "$status" -eq 1 ]
			[ "$TOOK_MS" -lt 8000 ] # 3 s, and the start of the script (openssl, sed) on a busy machine
			# (nc may also give up connecting to the listener that never accepts)
			[[ $output == *"no reply from $target"* || $output == *"gave up: no answer from $target within 3 seconds"* ||
				($target == *:$STUCK_PORT && $output == *"cannot connect to $target"*) ]]
			[[ $output != *Terminated* ]]
			[ -z "$LEFT" ]
		done
	done
	kill "$SILENT_PID" "$STUCK_PID"
}

@test "hook: in post/ every lineage is registered, with RENEWED_DOMAINS if set" {
	le=$(certbot_dir)
	add_lineage "$le" all.example all.example
	run_hook bash "$le" RENEWED_DOMAINS="renewed.example"
	echo "$output"
	[[ $output == *"domains from the certificates in $le/renewal and RENEWED_DOMAINS: renewed.example all.example"* ]]
}

@test "hook: a wildcard name is sent as it is, never matched against files" {
	le=$(certbot_dir)
	mkdir -p "$BATS_TEST_TMPDIR/cwd" && touch "$BATS_TEST_TMPDIR/cwd/evil.example.com" "$BATS_TEST_TMPDIR/cwd/other.example.com"
	mv "$le/renewal-hooks/post" "$le/renewal-hooks/deploy"
	run env KEYCHEST_SERVER="$HOST:$PORT" KEYCHEST_GLOBAL_CLI_INI=/nonexistent RENEWED_DOMAINS="*.example.com" \
		sh -c "cd '$BATS_TEST_TMPDIR/cwd' && exec bash '$le/renewal-hooks/deploy/keychest'"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"-> command add domain *.example.com apikey"* ]]
	[ "$(domains_of_key "$(cat "$le/renewal-hooks/keychest_apikey")")" = "*.example.com" ]
}

@test "hook: busybox sh falls back to busybox nc" {
	le=$(certbot_dir)
	add_lineage "$le" busybox.example busybox.example www.busybox.example
	run_hook "busybox sh" "$le" KEYCHEST_EMAIL=bb@example.com
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"via nc ("*"busybox nc)"* ]]
	[ "$(domains_of_key "$(cat "$le/renewal-hooks/keychest_apikey")")" = "busybox.example www.busybox.example" ]
}

@test "hook: under plain sh (dash) it runs itself again with bash for /dev/tcp" {
	le=$(certbot_dir)
	add_lineage "$le" dash.example
	run env KEYCHEST_SERVER="$HOST:$PORT" KEYCHEST_GLOBAL_CLI_INI=/nonexistent sh -c "cd / && $le/renewal-hooks/post/keychest"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"via devtcp"* ]]
}

@test "hook: shellcheck clean" {
	shellcheck "$ROOT/hooks/certbot/keychest"
}

@test "container: registers, logs one line, then runs the app, even with the server down (bash, busybox sh)" {
	for sh in bash "busybox sh"; do
		keyfile=$BATS_TEST_TMPDIR/key-${sh// /-}
		run env KEYCHEST_SERVER="$HOST:$PORT" KEYCHEST_DOMAINS="app1.example,app2.example app3.example" \
			KEYCHEST_EMAIL=containers@example.com KEYCHEST_APIKEY_FILE="$keyfile" KEYCHEST_NO_REEXEC=1 \
			$sh "$ROOT/hooks/container/keychest-register" echo app started
		echo "$sh: $output"
		[ "$status" -eq 0 ]
		[ "${#lines[@]}" -eq 2 ]
		[[ ${lines[0]} == "keychest: done: 3 domains registered, 0 refused, key "*" claimed by containers@example.com; 3 pending until the owner confirms by mail" ]]
		[ "${lines[1]}" = "app started" ]
		[ "$(stat -c %a "$keyfile")" = 600 ]
		[ "$(domains_of_key "$(cat "$keyfile")")" = "app1.example app2.example app3.example" ]
		run env KEYCHEST_SERVER=127.0.0.1:1 KEYCHEST_DOMAINS=app1.example KEYCHEST_APIKEY_FILE="$keyfile" \
			KEYCHEST_NO_REEXEC=1 $sh "$ROOT/hooks/container/keychest-register" echo app started anyway
		echo "$sh down: $output"
		[ "$status" -eq 0 ]
		[ "${lines[1]}" = "app started anyway" ]
	done
}

@test "container: sourced at the top of an entrypoint, it returns to it" {
	printf '#!/bin/bash\n. "%s"\necho "entrypoint goes on with $1"\n' "$ROOT/hooks/container/keychest-register" >"$BATS_TEST_TMPDIR/entry.sh"
	run env KEYCHEST_SERVER="$HOST:$PORT" KEYCHEST_DOMAINS=sourced.example KEYCHEST_APIKEY_FILE="$BATS_TEST_TMPDIR/skey" \
		bash "$BATS_TEST_TMPDIR/entry.sh" first-arg
	echo "$output"
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == "keychest: done: 1 domains registered"* ]]
	[ "${lines[1]}" = "entrypoint goes on with first-arg" ]
}
