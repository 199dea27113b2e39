#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private PostgreSQL cluster for development and tests.
#   scripts/pg.sh start DIR   initialise (once) and start the cluster in DIR,
#                             create the database "keychest", print its URL
#   scripts/pg.sh stop DIR    stop it
# The port is derived from DIR, so two checkouts never collide; the server
# listens on 127.0.0.1 only, with no Unix socket. PostgreSQL refuses to run
# as root, so as root the cluster belongs to the "postgres" user.
set -euo pipefail

action=${1:?usage: pg.sh start|stop DIR}
dir=$(mkdir -p "${2:?usage: pg.sh start|stop DIR}" && cd "$2" && pwd)
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "pg.sh: PostgreSQL is not installed (scripts/deps.sh installs it)" >&2; exit 1; }

# dirhash is a number that stands for DIR.
dirhash() {
	printf '%s' "$dir" | cksum | cut -d' ' -f1
}

# port_free reports whether nothing listens on 127.0.0.1:$1.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The port is derived from DIR and remembered in DIR/port; when something
# else already listens there, the next free one is taken.
if [ -f "$dir/port" ]; then
	port=$(cat "$dir/port")
else
	port=$((20000 + $(dirhash) % 12000)) # below the ephemeral range (32768 and up)
fi

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# The cluster lives in DIR unless its owner cannot reach DIR (a checkout
# under /root, say); then it lives in a folder of its own under /var/tmp.
data=$dir/data
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$dir"; then
	data=/var/tmp/keychest-lined-pg-$(dirhash)
fi

case $action in
start)
	if [ ! -f "$data/PG_VERSION" ]; then
		mkdir -p "$data"
		[ "$(id -u)" -eq 0 ] && chown postgres: "$data"
		as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	if as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		port=$(sed -n 4p "$data/postmaster.pid") # the running cluster's own port
	else
		for _ in $(seq 1 50); do
			port_free "$port" && break
			port=$((port + 1))
		done
		echo "$port" >"$dir/port"
		as_owner "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
			-o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300" \
			start >/dev/null || { tail -n 20 "$data/server.log" >&2; exit 1; }
	fi
	psql=("$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
	if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'keychest'")" ]; then
		"${psql[@]}" -c "CREATE DATABASE keychest"
	fi
	echo "postgres://postgres@127.0.0.1:$port/keychest?sslmode=disable"
	;;
stop)
	if [ -f "$data/PG_VERSION" ]; then
		as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	;;
*)
	echo "usage: pg.sh start|stop DIR" >&2
	exit 2
	;;
esac
