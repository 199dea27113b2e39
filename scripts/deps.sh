#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what running or testing keychest-lined needs, and only what is
# missing, from Debian's packages. Safe to run again and again.
#   scripts/deps.sh run    PostgreSQL
#   scripts/deps.sh bench  PostgreSQL, redis-server, redis-tools, python3
#                          (the agent benchmark's DNS stub; make test has
#                          it through certbot)
#   scripts/deps.sh test   PostgreSQL, bats, ksh93, busybox, shellcheck,
#                          openssl, certbot, lintian and systemd (for
#                          systemd-analyze; the package's test), Chromium
#                          (the account page's browser test), haproxy (the
#                          PROXY protocol's test), tinyproxy (the
#                          agent's HTTP CONNECT test), nsd (the
#                          agent's zone-transfer test), slapd (its
#                          LDAP test), and Pebble
#                          (the ACME test server, built with go install
#                          into .local/bin)
set -euo pipefail
cd "$(dirname "$0")/.."

want=(postgresql)
case ${1:-run} in
test) want+=(bats ksh busybox shellcheck openssl certbot lintian systemd chromium haproxy tinyproxy nsd slapd) ;;
bench) want+=(redis-server redis-tools python3) ;;
esac

missing=()
for pkg in "${want[@]}"; do
	case $pkg in
	postgresql) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=("$pkg") ;;
	ksh) command -v ksh93 >/dev/null 2>&1 || missing+=("$pkg") ;;
	redis-tools) command -v redis-benchmark >/dev/null 2>&1 || missing+=("$pkg") ;;
	systemd) command -v systemd-analyze >/dev/null 2>&1 || missing+=("$pkg") ;;
	haproxy) [ -x /usr/sbin/haproxy ] || missing+=("$pkg") ;;
	nsd) [ -x /usr/sbin/nsd ] || missing+=("$pkg") ;;
	slapd) [ -x /usr/sbin/slapd ] || missing+=("$pkg") ;;
	*) command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg") ;;
	esac
done
# Pebble is not in Debian 12 at the version the tests use.
if [ "${1:-run}" = test ] && [ ! -x .local/bin/pebble ]; then
	echo "deps: building pebble v2.10.1" >&2
	GOBIN=$(pwd)/.local/bin go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.1
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing ${missing[*]}; run this script as root to install them" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
