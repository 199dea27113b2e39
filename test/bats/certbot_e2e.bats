#!/usr/bin/env bats
# SPDX-License-Identifier: Apache-2.0
# The real certbot (Debian's) against Pebble, the ACME test server: the hook
# installed in renewal-hooks/post and deploy runs on "certbot renew" and
# registers every name with keychest-lined, claimed by the account's email.

load helpers

setup_file() {
	start_server
	start_pebble
}

teardown_file() {
	kill "$PEBBLE_PID" 2>/dev/null || true
	stop_server
}

@test "certbot renew runs the hook, which registers every certificate name under one key, claimed by the account email" {
	base=$BATS_TEST_TMPDIR/certbot
	mkdir -p "$base/www"
	certbot_local "$base" certonly --agree-tos --email Admin@Example.org --no-eff-email \
		--webroot -w "$base/www" -d one.example
	certbot_local "$base" certonly --agree-tos --webroot -w "$base/www" -d two.example -d www.two.example
	for kind in post deploy; do
		mkdir -p "$base/etc/renewal-hooks/$kind"
		cp "$ROOT/hooks/certbot/keychest" "$base/etc/renewal-hooks/$kind/keychest"
		chmod 755 "$base/etc/renewal-hooks/$kind/keychest"
		printf 'KEYCHEST_SERVER=%s\nKEYCHEST_CERTBOT_LOGS=%s\n' "$HOST:$PORT" "$base/logs" \
			>"$base/etc/renewal-hooks/$kind/keychest.conf"
	done

	run certbot_local "$base" renew --force-renewal --no-random-sleep-on-renew
	echo "$output"
	[ "$status" -eq 0 ]

	keyfile=$base/etc/renewal-hooks/keychest_apikey
	[ "$(stat -c %a "$keyfile")" = 600 ]
	key=$(cat "$keyfile")
	[ "$(domains_of_key "$key")" = "one.example two.example www.two.example" ]
	[ "$(keys_of admin@example.org)" = 1 ]
	# Certbot's log shows what the hook sent and where it found what.
	log=$(cat "$base"/logs/letsencrypt.log*)
	[[ $log == *"keychest: email Admin@Example.org (from $base/logs/letsencrypt.log"* ]]
	[[ $log == *"keychest: domains from RENEWED_DOMAINS: two.example www.two.example"* ]]
	[[ $log == *"keychest: domains from the certificates in $base/etc/renewal and RENEWED_DOMAINS: two.example www.two.example one.example"* ]]
	[[ $log == *"keychest: -> command add domain www.two.example apikey ${key:0:8}..."* ]]
	[[ $log == *"keychest: done: 3 domains registered, 0 refused"* ]]
	[[ $log != *"command check"* ]] # pending until the owner confirms: nothing to check

	# Confirmed, the next renewal also asks the monitor to look at each name.
	KEYCHEST_DATABASE_URL=$DB_URL "$ROOT/bin/keychest-lined" confirm --email admin@example.org
	run certbot_local "$base" renew --force-renewal --no-random-sleep-on-renew
	[ "$status" -eq 0 ]
	log=$(cat "$base"/logs/letsencrypt.log*)
	[[ $log == *"keychest: -> command check domain www.two.example apikey ${key:0:8}..."* ]]
	[[ $log == *"keychest: <- status ok 200 check queued"* ]]
	[ "$(sql "SELECT string_agg(name, ' ' ORDER BY name) FROM mon_targets WHERE check_asked_at IS NOT NULL")" = "one.example two.example www.two.example" ]
}
