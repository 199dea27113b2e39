#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# The Debian package: make deb, dpkg -i on this machine, the files, the
# users and the permissions, systemd-analyze on the units, the installed
# binaries run by hand as the package's users (keychest-lined against the
# test PostgreSQL, keychest-amp printing its root, keychest-agent accepting
# its DIR), and dpkg --purge, which leaves the machine as it was. Needs
# root; skipped when the package or the user keychest, keychestamp or
# keychest-agent is already on the machine.

load helpers

setup_file() {
	[ "$(id -u)" -eq 0 ] || return 0
	dpkg -s keychest-lined >/dev/null 2>&1 && return 0
	getent passwd keychest >/dev/null && return 0
	getent passwd keychestamp >/dev/null && return 0
	getent passwd keychest-agent >/dev/null && return 0
	export STAMP=$(git -C "$ROOT" describe --tags --always --dirty)
	export DEB=$ROOT/$(make -s -C "$ROOT" deb VERSION="$STAMP" | tail -n 1)
	export DEB_READY=1
}

teardown_file() {
	if [ -n "${DEB_READY:-}" ] && dpkg -s keychest-lined >/dev/null 2>&1; then
		dpkg --purge keychest-lined >/dev/null
	fi
}

setup() {
	[ -n "${DEB_READY:-}" ] || skip "needs root, and no keychest-lined package or keychest user on the machine"
}

# mode_owner prints a file's mode and owner as "755 root:root".
mode_owner() {
	stat -c '%a %U:%G' "$1"
}

@test "make deb: lintian reports no errors" {
	[[ $(basename "$DEB") == keychest-lined_*_$(dpkg --print-architecture).deb ]]
	run lintian --fail-on error "$DEB"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "dpkg -i: files, permissions, the users keychest and keychestamp, services left disabled" {
	dpkg -i "$DEB"
	[ "$(mode_owner /usr/bin/keychest-lined)" = "755 root:root" ]
	[ "$(mode_owner /etc/default/keychest-lined)" = "600 root:root" ]
	[ "$(mode_owner /lib/systemd/system/keychest-lined.service)" = "644 root:root" ]
	[ "$(mode_owner /lib/systemd/system/keychest-lined-monitor.service)" = "644 root:root" ]
	[ "$(mode_owner /usr/bin/keychest-amp)" = "755 root:root" ]
	[ "$(mode_owner /lib/systemd/system/keychest-amp.service)" = "644 root:root" ]
	[ "$(mode_owner /etc/default/keychest-amp)" = "644 root:root" ]
	[ -s /usr/share/doc/keychest-lined/amp.md ]
	[ "$(mode_owner /usr/share/keychest/hooks/certbot/keychest)" = "755 root:root" ]
	[ "$(readlink /usr/share/keychest/hooks/container/keychest-register)" = ../certbot/keychest ]
	cmp "$ROOT/hooks/certbot/keychest" /usr/share/keychest/hooks/certbot/keychest
	for doc in copyright changelog.gz operations.md README.md; do
		[ -s "/usr/share/doc/keychest-lined/$doc" ]
	done
	[ "$(keychest-lined version)" = "keychest-lined $STAMP" ]

	IFS=: read -r _ _ uid _ _ home shell < <(getent passwd keychest)
	[ "$uid" -lt 1000 ] && [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ]
	getent group keychest
	IFS=: read -r _ _ uid _ _ home shell < <(getent passwd keychestamp)
	[ "$uid" -lt 1000 ] && [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ]
	getent group keychestamp
	[ "$(id -G keychestamp)" = "$(getent group keychestamp | cut -d: -f3)" ] # in no group of keychest's
	grep -q '^User=keychestamp$' /lib/systemd/system/keychest-amp.service

	# every setting, commented; the service is not enabled
	[ -z "$(grep -v '^#' /etc/default/keychest-lined | grep -v '^$' || true)" ]
	diff <(keychest-lined env-template) /etc/default/keychest-lined
	[ -z "$(ls /etc/systemd/system/*.wants/ | grep keychest || true)" ]
}

@test "dpkg -i: keychest-agent static, its user, its DIR 0700, allow.conf denying all, its unit not enabled" {
	[ "$(mode_owner /usr/bin/keychest-agent)" = "755 root:root" ]
	run readelf -l /usr/bin/keychest-agent
	[[ $output != *"program interpreter"* ]] # static: no dynamic loader
	[ -z "$(readelf -d /usr/bin/keychest-agent | grep NEEDED || true)" ]
	[ "$(mode_owner /lib/systemd/system/keychest-agent.service)" = "644 root:root" ]
	[ "$(mode_owner /etc/default/keychest-agent)" = "644 root:root" ]
	[ -z "$(grep -v '^#' /etc/default/keychest-agent | grep -v '^$' || true)" ]
	[ "$(mode_owner /etc/keychest-agent)" = "700 keychest-agent:keychest-agent" ]
	[ "$(mode_owner /etc/keychest-agent/allow.conf)" = "644 root:root" ]
	[ -z "$(grep -v '^#' /etc/keychest-agent/allow.conf || true)" ] # deny by default
	[ -s /usr/share/doc/keychest-lined/agent.md ]

	IFS=: read -r _ _ uid _ _ home shell < <(getent passwd keychest-agent)
	[ "$uid" -lt 1000 ] && [ "$home" = /nonexistent ] && [ "$shell" = /usr/sbin/nologin ]
	[ "$(id -G keychest-agent)" = "$(getent group keychest-agent | cut -d: -f3)" ] # in no other group

	unit=/lib/systemd/system/keychest-agent.service
	grep -qx 'Type=notify' "$unit"
	grep -qx 'User=keychest-agent' "$unit"
	grep -qx 'ExecStart=/usr/bin/keychest-agent run -e /etc/keychest-agent --log -' "$unit"
	grep -qx 'Restart=on-failure' "$unit"
	grep -qx 'RestartSec=30s' "$unit"
	grep -qx 'Environment=KEYCHESTAGENT_START_JITTER=30s' "$unit"
	grep -qx 'ReadWritePaths=/etc/keychest-agent' "$unit"
	[ ! -e /etc/systemd/system/multi-user.target.wants/keychest-agent.service ]
}

@test "the installed keychest-agent, run as keychest-agent with the unit's command, accepts its DIR and refuses it writable by group" {
	# what the unit does, but "once" against a closed port: the local checks
	# pass (no AGT0501), then the server cannot be reached (AGT0503, exit 1).
	agent() {
		setpriv --reuid=keychest-agent --regid=keychest-agent --clear-groups \
			/usr/bin/keychest-agent once -e /etc/keychest-agent --log - --server "http://127.0.0.1:$(free_port)" --for 5s
	}
	run agent
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *'"code":"AGT0503"'* ]] && [[ $output != *AGT0501* ]]
	[ "$(mode_owner /etc/keychest-agent/identity.json 2>/dev/null || echo none)" = none ]
	chmod 0770 /etc/keychest-agent
	run agent
	chmod 0700 /etc/keychest-agent
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *'"code":"AGT0501"'* ]]
}

@test "the units pass systemd-analyze verify; the file limit fits KEYCHEST_MAX_CONNS" {
	run systemd-analyze verify /lib/systemd/system/keychest-lined.service /lib/systemd/system/keychest-lined-monitor.service \
		/lib/systemd/system/keychest-amp.service /lib/systemd/system/keychest-agent.service
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ] # no warning either (an unknown key, such as RestartSteps before systemd 254)
	for unit in keychest-lined keychest-amp keychest-agent; do
		run systemd-analyze security --offline=yes "/lib/systemd/system/$unit.service"
		echo "${lines[-1]}"
		[[ ${lines[-1]} == *"Overall exposure level for $unit.service: "[01].*OK* ]]
	done
	setting() { sed -n "s/^#KEYCHEST_$1=//p" /etc/default/keychest-lined; }
	nofile=$(sed -n 's/^LimitNOFILE=//p' /lib/systemd/system/keychest-lined.service)
	echo "LimitNOFILE=$nofile MAX_CONNS=$(setting MAX_CONNS) DB_CONNS=$(setting DB_CONNS)"
	[ "$nofile" -ge $(($(setting MAX_CONNS) + $(setting DB_CONNS) + 128)) ]
}

@test "the installed binary, run as keychest, answers ping and apikey from the test PostgreSQL" {
	: "${KEYCHEST_TEST_DATABASE_URL:?run the bats tests with make test}"
	name="keychest_deb_$$"
	psql -q "$KEYCHEST_TEST_DATABASE_URL" -c "CREATE DATABASE $name"
	# what the unit does: the settings file, then the binary as keychest
	DB=${KEYCHEST_TEST_DATABASE_URL%%/postgres\?*}/$name?sslmode=disable serve_by_hand "$BATS_TEST_TMPDIR/server.log" \
		bash -c 'set -a; . /etc/default/keychest-lined
			KEYCHEST_DATABASE_URL=$DB KEYCHEST_LISTEN=127.0.0.1:0 KEYCHEST_HTTP_LISTEN=127.0.0.1:0
			exec setpriv --reuid=keychest --regid=keychest --clear-groups /usr/bin/keychest-lined'
	[ "$(stat -c %U "/proc/$BY_HAND_PID")" = keychest ]
	run in_shell bash send_once.sh 'command ping'
	[ "$output" = "status ok 200 pong" ]
	run in_shell bash seed_apikey.sh
	[[ $output =~ ^data\ [0-9a-f]{8}(-[0-9a-f]{8}){4}$ ]]
	kill -TERM "$BY_HAND_PID"
	wait "$BY_HAND_PID"
	psql -q "$KEYCHEST_TEST_DATABASE_URL" -c "DROP DATABASE $name WITH (FORCE)"
}

@test "the installed keychest-amp, run as keychestamp with the unit's settings, makes its root in a folder of its own and prints it" {
	# a folder keychestamp can reach: the test's own lies under root's 0700 one
	dir=$(mktemp -d /tmp/keychest-amp-deb.XXXXXX)
	chown keychestamp:keychestamp "$dir"
	# what the unit does: the settings file, then the binary as keychestamp
	run bash -c 'set -a; . /etc/default/keychest-amp; KEYCHESTAMP_ETC=$1
		exec setpriv --reuid=keychestamp --regid=keychestamp --clear-groups /usr/bin/keychest-amp -c' _ "$dir"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"-----BEGIN CERTIFICATE-----"* ]]
	[ "$(mode_owner "$dir/ca.key")" = "600 keychestamp:keychestamp" ]
	rm -rf "$dir"
	printf '%s\n' "$output" | sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' | openssl x509 -noout -text >"$BATS_TEST_TMPDIR/root.txt"
	grep -A1 'X509v3 Extended Key Usage' "$BATS_TEST_TMPDIR/root.txt" | grep -qx ' *TLS Web Server Authentication'
	grep -q 'email:.invalid' "$BATS_TEST_TMPDIR/root.txt"
}

@test "dpkg --purge removes the files and the users" {
	echo '{}' >/etc/keychest-agent/identity.json # what the agent leaves: purge takes it
	dpkg --purge keychest-lined
	run dpkg -s keychest-lined
	[ "$status" -ne 0 ]
	[ -z "$(getent passwd keychest || true)" ] && [ -z "$(getent group keychest || true)" ]
	[ -z "$(getent passwd keychestamp || true)" ] && [ -z "$(getent group keychestamp || true)" ]
	[ -z "$(getent passwd keychest-agent || true)" ] && [ -z "$(getent group keychest-agent || true)" ]
	for f in /usr/bin/keychest-lined /etc/default/keychest-lined /lib/systemd/system/keychest-lined.service \
		/usr/bin/keychest-amp /etc/default/keychest-amp /lib/systemd/system/keychest-amp.service \
		/usr/bin/keychest-agent /etc/default/keychest-agent /lib/systemd/system/keychest-agent.service /etc/keychest-agent \
		/usr/share/keychest /usr/share/doc/keychest-lined; do
		[ ! -e "$f" ]
	done
}
