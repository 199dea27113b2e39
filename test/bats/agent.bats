#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# keychest-agent from a crontab-like loop: bin/keychest-agent (make build)
# runs "once" against the server of helpers.bash, as the docs' crontab line
# does, and each pass exits 0 with its log lines.

load helpers

setup_file() {
	start_server
	export WEB=$(grep -o '"http":"[^"]*"' "$SERVER_LOG" | head -n 1 | cut -d'"' -f4)
}

teardown_file() {
	stop_server
}

teardown() {
	kill ${TLS_PID:-} ${DNS_PID:-} 2>/dev/null || true
}

# line sends one line-protocol command and prints the reply lines, up to
# the status line.
line() {
	local l
	exec 3<>"/dev/tcp/$HOST/$PORT"
	printf '%s\n' "$1" >&3
	while read -r -t 10 l <&3; do
		echo "$l"
		[[ $l == status* ]] && break
	done
	exec 3<&-
}

# codes prints the log codes of a JSON log, in order.
codes() {
	grep -o '"code":"[A-Z]*[0-9]*"' "$1" | cut -d'"' -f4 | paste -sd' '
}

@test "once from a crontab-like loop: each pass exits 0; unclaimed it registers then heartbeats; claimed it runs the waiting job" {
	dir=$BATS_TEST_TMPDIR/agent
	# the agent's DNS: every name is 127.0.0.1
	coproc DNS { exec python3 "$BATS_TEST_DIRNAME/fake_dns.py" 127.0.0.1; }
	read -r dns_port <&"${DNS[0]}"
	agent_once() { # what the crontab line runs
		"$ROOT/bin/keychest-agent" once -e "$dir" --server "http://$WEB" --for 20s --site office \
			--resolver "127.0.0.1:$dns_port"
	}
	for pass in 1 2; do
		run agent_once
		echo "pass $pass: $output"
		[ "$status" -eq 0 ]
	done
	[ "$(stat -c %a "$dir")" = 700 ] && [ "$(stat -c %a "$dir/identity.json")" = 600 ]
	cat "$dir/agent.log"
	# pass 1: registered, pass done; pass 2: pass done, no new registration
	[ "$(codes "$dir/agent.log")" = "AGT0002 AGT0011 AGT0011" ]
	[ "$(grep -c '"claimed":false,"jobs":0' "$dir/agent.log")" = 2 ]
	[ "$(sql 'SELECT count(*) FROM agents')" = 1 ]

	# Claimed, with a target behind its site: the next pass takes the job,
	# relays it (a TLS server on loopback, which allow.conf permits), exits 0.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=localhost \
		-keyout "$BATS_TEST_TMPDIR/key.pem" -out "$BATS_TEST_TMPDIR/cert.pem" 2>/dev/null
	tport=$(free_port)
	openssl s_server -quiet -accept "127.0.0.1:$tport" -cert "$BATS_TEST_TMPDIR/cert.pem" -key "$BATS_TEST_TMPDIR/key.pem" \
		-naccept 4 </dev/null >/dev/null 2>&1 3>&- &
	TLS_PID=$!
	wait_port "$tport"
	printf 'allow 127.0.0.1/32 %s ldap.corp.example\n' "$tport" >"$dir/allow.conf"
	chmod 0600 "$dir/allow.conf"
	key=$(line 'command apikey' | sed -n 's/^data //p')
	line "command claim apikey $key email agent-owner@example.org" | grep -q '^status ok'
	KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" confirm --email agent-owner@example.org >/dev/null
	code=$("$ROOT/bin/keychest-agent" claim-code -e "$dir" --server "http://$WEB" 2>/dev/null)
	line "command claim agent $code apikey $key" | tee /dev/stderr | grep -q '^status ok 200 agent .* claimed for site office'
	line "command add domain ldap.corp.example:$tport apikey $key site office" | tee /dev/stderr | grep -q '^status ok'
	for pass in 3 4; do
		run agent_once
		echo "pass $pass: $output"
		[ "$status" -eq 0 ]
	done
	cat "$dir/agent.log"
	[ "$(grep -c '"code":"AGT0011"' "$dir/agent.log")" = 4 ]
	grep -q '"claimed":true,"jobs":1' "$dir/agent.log"  # pass 3 ran the job
	grep -q '"claimed":true,"jobs":0' "$dir/agent.log"  # pass 4: nothing waited
	run line "command cert domain ldap.corp.example:$tport apikey $key"
	echo "$output"
	[[ $output == *"site=office"* ]] && [[ $output != *"class=agent_unavailable"* ]] && [[ $output != *"class=agent_refused"* ]]
	# the spooled log reached the server once claimed
	[ "$(sql 'SELECT count(*) > 0 FROM agent_logs')" = t ]
}

@test "once --email from a crontab-like loop (bash, ksh93): one claim mail per link lifetime, not one per run; the operator's approve-agent claims it" {
	dir=$BATS_TEST_TMPDIR/agent-mail
	cron_line='"$AGENT" once -e "$DIR" --server "$SERVER" --for 20s --site lab --email owner@example.org'
	for sh in bash ksh93 bash ksh93; do # the crontab line, in either shell
		run env AGENT="$ROOT/bin/keychest-agent" DIR="$dir" SERVER="http://$WEB" "$sh" -c "$cron_line"
		echo "$sh: $output"
		[ "$status" -eq 0 ]
	done
	cat "$dir/agent.log"
	mails() { sql "SELECT count(*) FROM outbox WHERE kind = 'agent_claim' AND to_email = 'owner@example.org'"; }
	[ "$(mails)" = 1 ]
	[ "$(grep -c '"code":"AGT0005"' "$dir/agent.log")" = 1 ]
	[ "$(stat -c %a "$dir/claim-mail.json")" = 600 ]
	# Seven days and an hour on: the link expired, unanswered. The next run asks once more.
	sql "UPDATE tokens SET expires_at = now() - interval '1 second' WHERE action = 'agent_approve'" >/dev/null
	python3 - "$dir/claim-mail.json" <<'PY'
import json, sys, datetime
p = sys.argv[1]
s = json.load(open(p))
s["last"] = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=7, hours=1, minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump(s, open(p, "w"))
PY
	for sh in ksh93 bash; do
		run env AGENT="$ROOT/bin/keychest-agent" DIR="$dir" SERVER="http://$WEB" "$sh" -c "$cron_line"
		[ "$status" -eq 0 ]
	done
	[ "$(mails)" = 2 ]
	# The owner cannot find the mail; the operator approves the claim for them.
	id=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' "$dir/identity.json")
	run env KEYCHEST_DATABASE_URL="$DB_URL" "$ROOT/bin/keychest-lined" approve-agent --agent "$id"
	echo "$output"
	[ "$status" -eq 0 ] && [[ $output == "agent $id given to owner@example.org" ]]
	run env AGENT="$ROOT/bin/keychest-agent" DIR="$dir" SERVER="http://$WEB" bash -c "$cron_line"
	[ "$status" -eq 0 ]
	grep -q '"code":"AGT0003"' "$dir/agent.log" # claimed
	[ "$(mails)" = 2 ]
	[ "$(sql "SELECT a.email FROM agents g JOIN accounts a ON a.id = g.account_id WHERE g.agent_id = '$id'")" = owner@example.org ]
}
