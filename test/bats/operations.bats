#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# docs/operations.md's least-privilege set-up, run as written: a schema
# owner migrates, and a server on a role that may only read and write rows
# serves the seed's client (key, claim, domain, mail) and can create nothing.

load helpers

setup() {
	: "${KEYCHEST_TEST_DATABASE_URL:?run the bats tests with make test}"
	P=keychest_ops_$$
	BASE=${KEYCHEST_TEST_DATABASE_URL%%/postgres\?*}/$P?sslmode=disable
}

teardown() {
	[ -z "${BY_HAND_PID:-}" ] || kill -TERM "$BY_HAND_PID" 2>/dev/null || true
	psql -q "$KEYCHEST_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $P WITH (FORCE)" \
		-c "DROP ROLE IF EXISTS ${P}_server" -c "DROP ROLE IF EXISTS ${P}_owner"
}

@test "operations.md: the server role reads and writes rows, the owner migrates" {
	sed -n '/^<!-- roles.sql/,/^<!-- end roles.sql/p' "$ROOT/docs/operations.md" | sed '/^<!--/d; /^```/d' |
		sed "s/\bkeychest_owner\b/${P}_owner/g; s/\bkeychest_server\b/${P}_server/g; s/\bkeychest\b/$P/g" |
		psql -q -v ON_ERROR_STOP=1 "$KEYCHEST_TEST_DATABASE_URL" -f -

	KEYCHEST_DATABASE_URL="$BASE&user=${P}_owner" "$ROOT/bin/keychest-lined" migrate
	[ "$(psql -qtA "$BASE" -c "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")" = "${P}_owner" ]

	KEYCHEST_DATABASE_URL="$BASE&user=${P}_server" KEYCHEST_LISTEN=127.0.0.1:0 KEYCHEST_HTTP_LISTEN=127.0.0.1:0 \
		serve_by_hand "$BATS_TEST_TMPDIR/server.log" "$ROOT/bin/keychest-lined"
	run in_shell bash flow.sh ops@example.com ops.example.org
	echo "$output"
	[[ ${lines[2]} == "status ok 200 claimed"* ]]
	[ "${lines[3]}" = "status ok 200 domain ops.example.org:443 added (pending until the owner confirms by mail)" ]
	for _ in $(seq 1 100); do
		grep -q '"code":"MAIL0200"' "$BATS_TEST_TMPDIR/server.log" && break
		sleep 0.05 # the mail sender works in the background
	done
	grep -q '"code":"MAIL0200"' "$BATS_TEST_TMPDIR/server.log"

	run psql -q "$BASE&user=${P}_server" -c "CREATE TABLE intruder (x int)"
	[[ $output == *"permission denied for schema public"* ]]
	run psql -q "$BASE&user=${P}_server" -c "DROP TABLE domains"
	[[ $output == *"must be owner of table domains"* ]]
}
