# SPDX-License-Identifier: Apache-2.0
# Shared set-up for the bats tests: a fresh database on the test
# PostgreSQL and the built server on a free loopback port.

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

# start_server creates a database, starts bin/keychest-lined on it, and
# exports HOST, PORT, DB_URL and SERVER_PID for the tests. It listens on
# BATS_KEYCHEST_LISTEN if set (HOST and PORT are then its first address).
start_server() {
	: "${KEYCHEST_TEST_DATABASE_URL:?run the bats tests with make test}"
	local name="keychest_bats_$$_$RANDOM"
	psql -q "$KEYCHEST_TEST_DATABASE_URL" -c "CREATE DATABASE $name"
	export DB_NAME=$name
	export DB_URL=${KEYCHEST_TEST_DATABASE_URL%%/postgres\?*}/$name?sslmode=disable
	export SERVER_LOG="$BATS_FILE_TMPDIR/server.log"
	KEYCHEST_DATABASE_URL=$DB_URL KEYCHEST_LISTEN=${BATS_KEYCHEST_LISTEN:-127.0.0.1:0} KEYCHEST_HTTP_LISTEN=127.0.0.1:0 KEYCHEST_QUIET_PERIOD=25ms \
		KEYCHEST_MONITOR_PORTS=${KEYCHEST_MONITOR_PORTS:-1-65535} \
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

# certbot_dir [NAME] makes a certbot config folder in the test's temp
# folder with the hook installed in renewal-hooks/post, and prints its path.
certbot_dir() {
	local le=$BATS_TEST_TMPDIR/${1:-le}
	mkdir -p "$le/renewal-hooks/post" "$le/renewal" "$le/live" "$le/logs"
	cp "$ROOT/hooks/certbot/keychest" "$le/renewal-hooks/post/keychest"
	chmod +x "$le/renewal-hooks/post/keychest"
	echo "$le"
}

# add_lineage DIR NAME [SAN...] adds a certificate lineage: a renewal conf
# and a self-signed certificate whose subjectAltName holds the SANs.
add_lineage() {
	local le=$1 name=$2
	shift 2
	local sans=""
	for san in "$@"; do sans="${sans:+$sans,}DNS:$san"; done
	mkdir -p "$le/live/$name"
	printf 'version = 2.1.0\ncert = %s\n' "$le/live/$name/cert.pem" >"$le/renewal/$name.conf"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -out "$le/live/$name/cert.pem" \
		-subj "/CN=$name" -days 1 ${sans:+-addext "subjectAltName=$sans"} 2>/dev/null
}

# run_hook SHELL DIR [VAR=VALUE...] runs the installed hook as certbot
# would, from /, with the server's address and no global cli.ini.
run_hook() {
	local shell=$1 le=$2
	shift 2
	run env KEYCHEST_SERVER="$HOST:$PORT" KEYCHEST_GLOBAL_CLI_INI=/nonexistent \
		KEYCHEST_CERTBOT_LOGS="$le/logs" KEYCHEST_NO_REEXEC=1 "$@" \
		sh -c "cd / && exec $shell '$le/renewal-hooks/post/keychest'"
}

# key_of_email prints how many keys the account of an email holds.
keys_of() {
	sql "SELECT count(*) FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE a.email = '$1'"
}

# domains_of_key prints the domains registered for a key, sorted.
domains_of_key() {
	sql "SELECT string_agg(d.name, ' ' ORDER BY d.name) FROM domains d JOIN api_keys k ON k.id = d.api_key_id
		WHERE k.key_hash = sha256(convert_to('$1', 'UTF8'))"
}

# silent_listener starts a listener that accepts connections into its
# backlog and never answers (perl-base is part of every Debian), and sets
# SILENT_PORT and SILENT_PID.
silent_listener() {
	local out=$BATS_TEST_TMPDIR/silent.port
	perl -MSocket -e 'socket(S, PF_INET, SOCK_STREAM, 0) or die; bind(S, sockaddr_in(0, inet_aton("127.0.0.1"))) or die;
		listen(S, 64) or die; ($p) = sockaddr_in(getsockname(S)); $| = 1; print "$p\n"; sleep 120' >"$out" 3>&- &
	SILENT_PID=$!
	for _ in $(seq 1 100); do
		SILENT_PORT=$(cat "$out")
		[ -n "$SILENT_PORT" ] && return 0
		sleep 0.02
	done
	return 1
}

# free_port prints a loopback port nothing listens on, below the kernel's
# ephemeral range (32768 and up), where outgoing connections take theirs.
free_port() {
	local port
	while :; do
		port=$((10000 + RANDOM % 22000))
		(exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
	done
}

# wait_port waits until something listens on 127.0.0.1:$1.
wait_port() {
	for _ in $(seq 1 200); do
		(exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# start_pebble runs Pebble, the ACME test server, on loopback, accepting
# every challenge, and sets ACME_URL, REQUESTS_CA_BUNDLE and PEBBLE_PID.
start_pebble() {
	local certs dir=$BATS_FILE_TMPDIR/pebble
	certs=$(go env GOMODCACHE)/github.com/letsencrypt/pebble/v2@v2.10.1/test/certs
	local port mport try
	mkdir -p "$dir"
	# A port can be taken between the check and Pebble's bind: try again.
	for try in 1 2 3 4 5; do
		port=$(free_port) mport=$(free_port)
		cat >"$dir/config.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$port", "managementListenAddress": "127.0.0.1:$mport",
  "certificate": "$certs/localhost/cert.pem", "privateKey": "$certs/localhost/key.pem",
  "httpPort": 5002, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
		PEBBLE_VA_ALWAYS_VALID=1 PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
			"$ROOT/.local/bin/pebble" -config "$dir/config.json" >"$dir/pebble.log" 2>&1 3>&- &
		export PEBBLE_PID=$!
		for _ in $(seq 1 200); do
			if (exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				export ACME_URL=https://127.0.0.1:$port/dir
				export REQUESTS_CA_BUNDLE=$certs/pebble.minica.pem
				return 0
			fi
			kill -0 "$PEBBLE_PID" 2>/dev/null || break
			sleep 0.05
		done
		kill "$PEBBLE_PID" 2>/dev/null || true
	done
	cat "$dir/pebble.log" >&2
	return 1
}

# certbot_local runs certbot with every folder under $1 and Pebble as CA.
certbot_local() {
	local base=$1
	shift
	certbot --non-interactive --server "$ACME_URL" --config-dir "$base/etc" --work-dir "$base/work" \
		--logs-dir "$base/logs" "$@"
}

# serve_by_hand LOG COMMAND... starts a server command in the background,
# its output in LOG, waits until it logs its listen address, and sets HOST,
# PORT and BY_HAND_PID.
serve_by_hand() {
	local log=$1 listen=""
	shift
	"$@" >"$log" 2>&1 &
	BY_HAND_PID=$!
	for _ in $(seq 1 200); do
		listen=$(grep -o '"listen":"[^"]*"' "$log" | head -n 1 | cut -d'"' -f4 || true)
		[ -n "$listen" ] && break
		kill -0 "$BY_HAND_PID" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$listen" ] || { cat "$log" >&2; return 1; }
	HOST=${listen%:*} PORT=${listen##*:}
}
