#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# The seed's bash client, byte for byte, against the real server and a real
# PostgreSQL, in bash and in ksh93.

load helpers

setup_file() {
	start_server
}

teardown_file() {
	stop_server
}

KEY_RE='^data [0-9a-f]{8}(-[0-9a-f]{8}){4}$'

@test "seed: 'command apikey' sent with echo -ne returns a key (bash, ksh93)" {
	for sh in bash ksh93; do
		run in_shell "$sh" seed_apikey.sh
		echo "$sh: $output"
		[ "$status" -eq 0 ]
		[[ $output =~ $KEY_RE ]]
		key=${output#data }
		[ "$(sql "SELECT count(*) FROM api_keys WHERE key_hash = sha256(convert_to('$key', 'UTF8'))")" = 1 ]
	done
}

@test "one dd read receives the data and the status line, with and without a newline (bash, ksh93)" {
	for sh in bash ksh93; do
		for cmd in 'command apikey' 'command apikey\n' 'command apikey\r\n'; do
			run in_shell "$sh" send_once.sh "$cmd"
			echo "$sh $cmd: $output"
			[ "${#lines[@]}" -eq 2 ]
			[[ ${lines[0]} =~ $KEY_RE ]]
			[ "${lines[1]}" = "status ok 200 new api key" ]
		done
	done
}

@test "key, claim and add on one connection, keys in either order, stored in PostgreSQL (bash, ksh93)" {
	for sh in bash ksh93; do
		run in_shell "$sh" flow.sh "Ops@Example.COM" "https://$sh.Example.org."
		echo "$sh: $output"
		[ "$status" -eq 0 ]
		[ "${lines[1]}" = "status ok 200 new api key" ]
		[[ ${lines[2]} == "status ok 200 claimed"* ]]
		[ "${lines[3]}" = "status ok 200 domain $sh.example.org:443 added (pending until the owner confirms by mail)" ]
		[ "${lines[4]}" = "status ok 200 domain $sh.example.org:443 already registered (pending until the owner confirms by mail)" ]
		key=${lines[5]#key=}
		[ "$(sql "SELECT a.email || ' ' || d.name || ':' || d.port FROM api_keys k
			JOIN accounts a ON a.id = k.account_id JOIN domains d ON d.api_key_id = k.id
			WHERE k.key_hash = sha256(convert_to('$key', 'UTF8'))")" = "ops@example.com $sh.example.org:443" ]
	done
}

@test "seed: 'command add domain keychest.net apikey K' sent with echo -e (bash, ksh93)" {
	key=$(in_shell bash seed_apikey.sh)
	key=${key#data }
	for sh in bash ksh93; do
		run in_shell "$sh" seed_add.sh "$key"
		echo "$sh: $output"
		[[ $output == "status ok 200 domain keychest.net:443 "* ]]
	done
}

@test "bad input gets a status error line in the same single read" {
	run in_shell bash send_once.sh 'command add domain bad..name apikey some-key-0123456789\n'
	[ "$output" = "status error 400 domain has an empty label" ]
	run in_shell bash send_once.sh 'command add domain example.com apikey never-issued-0123456789'
	[[ $output == "status error 401 unknown apikey"* ]]
	run in_shell ksh93 send_once.sh 'command launch\n'
	[[ $output == 'status error 400 unknown command "launch"'* ]]
}

@test "help and version answer in one read" {
	run in_shell bash send_once.sh 'command help'
	[[ ${lines[0]} == "data apikey | claim apikey K email E | add domain D apikey K"* ]]
	[[ ${lines[1]} == "status ok 200 "* ]]
	run in_shell bash send_once.sh 'command version\n'
	[[ ${lines[0]} == "data keychest-lined "* ]]
}

@test "a half-closing busybox nc client gets its answer, with and without a newline" {
	for input in 'command apikey' 'command apikey\n' 'command ping'; do
		run sh -c "printf '$input' | busybox nc $HOST $PORT"
		echo "$input: $output"
		[ "$status" -eq 0 ]
		case $input in
		*apikey*) [[ ${lines[0]} =~ $KEY_RE ]] && [ "${lines[1]}" = "status ok 200 new api key" ] ;;
		*) [ "$output" = "status ok 200 pong" ] ;;
		esac
	done
}

@test "without SMTP the claim's mail is in the log, with its links" {
	key=$(in_shell bash seed_apikey.sh)
	key=${key#data }
	run in_shell bash send_once.sh "command claim apikey $key email mailed@example.com\n"
	[[ $output == "status ok 200 claimed for mailed@example.com"* ]]
	for _ in $(seq 1 100); do
		grep -q '"code":"MAIL0001".*"to":"mailed@example.com"' "$SERVER_LOG" && break
		sleep 0.05 # the sender and the log are asynchronous
	done
	grep '"code":"MAIL0001".*"to":"mailed@example.com"' "$SERVER_LOG" | grep -q '"links":\["http://127.0.0.1:[0-9]*/confirm/'
}

@test "the log is JSON with event codes and never holds a whole key" {
	key=$(in_shell bash seed_apikey.sh)
	key=${key#data }
	run in_shell bash send_once.sh "command claim apikey $key email log@example.com\n"
	[[ $output == "status ok 200 claimed"* ]]
	for _ in $(seq 1 100); do
		grep -q "\"subject\":\"${key:0:8}\"" "$SERVER_LOG" && break
		sleep 0.05 # the log is written asynchronously
	done
	grep -q '"code":"LIN0001".*"verb":"claim".*"status":200' "$SERVER_LOG"
	run grep -c "$key" "$SERVER_LOG" # never the whole key ("! cmd" would not fail the test)
	[ "$output" = 0 ]
	all=$(grep -c '"code"' "$SERVER_LOG")
	full=$(grep -c '^{"level":.*"host":.*"ip":.*"version":.*"pid":.*"event_time":.*"time":' "$SERVER_LOG")
	[ "$all" -gt 3 ] && [ "$all" -eq "$full" ]
}
