# Shared set-up for the bats tests: a fresh database on the test
# PostgreSQL and the built server on a free loopback port.

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

# start_server creates a database, starts bin/keychest-lined on it, and
# exports HOST, PORT, DB_URL and SERVER_PID for the tests.
start_server() {
	: "${KEYCHEST_TEST_DATABASE_URL:?run the bats tests with make test}"
	local name="keychest_bats_$$_$RANDOM"
	psql -q "$KEYCHEST_TEST_DATABASE_URL" -c "CREATE DATABASE $name"
	export DB_NAME=$name
	export DB_URL=${KEYCHEST_TEST_DATABASE_URL%%/postgres\?*}/$name?sslmode=disable
	export SERVER_LOG="$BATS_FILE_TMPDIR/server.log"
	KEYCHEST_DATABASE_URL=$DB_URL KEYCHEST_LISTEN=127.0.0.1:0 KEYCHEST_QUIET_PERIOD=25ms \
		"$ROOT/bin/keychest-lined" >"$SERVER_LOG" 2>&1 &
	export SERVER_PID=$!
	local listen=""
	for _ in $(seq 1 200); do
		listen=$(grep -o '"listen":"[^"]*"' "$SERVER_LOG" | head -n 1 | cut -d'"' -f4 || true)
		[ -n "$listen" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; return 1; }
		sleep 0.05
	done
	[ -n "$listen" ] || { cat "$SERVER_LOG" >&2; return 1; }
	export HOST=${listen%:*} PORT=${listen##*:}
}

# stop_server stops the server with SIGTERM, expects exit code 0, and
# drops the database.
stop_server() {
	kill -TERM "$SERVER_PID"
	local rc=0
	wait "$SERVER_PID" || rc=$?
	psql -q "$KEYCHEST_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)"
	[ "$rc" -eq 0 ] || { echo "server exited with $rc" >&2; return 1; }
}

# sql runs a query on the test database and prints the bare result.
sql() {
	psql -qtA "$DB_URL" -c "$1"
}

# in_shell runs a client script file in the given shell with HOST and PORT.
in_shell() {
	local shell=$1 script=$2
	shift 2
	HOST=$HOST PORT=$PORT "$shell" "$ROOT/test/bats/clients/$script" "$@"
}
