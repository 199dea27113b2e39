#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Discovery's figures for make bench (issue 23), printed to stdout as
# docs/benchmarks.md's "## discovery" section. scripts/bench.sh runs it
# after the agent's; "scripts/bench.sh discovery" runs it alone and
# replaces that section in place (about two minutes). On its own
# PostgreSQL. Each figure is the median of REPEAT runs of one pass:
#   1. the agent (agent/discover_bench_test.go): a generated zone of
#      100,000 names transferred from Debian's NSD on loopback (AXFR with
#      TSIG) and turned into candidates; 10,000 certificates (and a CA's)
#      read from Debian's slapd with a paged search: the time, what the
#      process allocated, and its live heap after a collection;
#   2. the service (web/agent_discover_bench_test.go): the post of those
#      10,000 certificates and of a 65,536-candidate proposal list (what
#      that zone gives) to the agent API, stored in PostgreSQL: the time
#      of the first post (all new) and of the same post again (all seen),
#      and what the process allocated for each.
set -Eeuo pipefail
trap 'echo "bench-discovery: failed at scripts/bench-discovery.sh line $LINENO (exit $?); see .local/bench-discovery/" >&2' ERR
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
work=.local/bench-discovery

scripts/pg.sh stop "$work" 2>/dev/null || true
rm -rf "$work" && mkdir -p "$work"
url=$(scripts/pg.sh start "$work")
trap 'scripts/pg.sh stop "$work"' EXIT
export KEYCHEST_TEST_DATABASE_URL="${url%%/keychest\?*}/postgres?sslmode=disable" KEYCHEST_MONITOR_RESOLVER=127.0.0.1:1

echo "bench-discovery: the agent (go test -bench 'ZoneTransfer100k|LDAPRead10k' ./agent/)" >&2
go test -run '^$' -bench 'ZoneTransfer100k|LDAPRead10k' -benchtime 1x -count "$REPEAT" ./agent/ >"$work/agent.txt"
echo "bench-discovery: the service (go test -bench 'StoreLDAPPost10k|StoreProposalPost65k' ./web/)" >&2
go test -run '^$' -bench 'StoreLDAPPost10k|StoreProposalPost65k' -benchtime 1x -count "$REPEAT" ./web/ >"$work/web.txt"

# m FILE BENCHMARK UNIT: the median of UNIT's values in FILE's lines of
# BENCHMARK. It runs inside the section's command substitutions, where a
# failure does not stop the script: a missing figure leaves $work/missing.
m() {
	awk -v b="Benchmark$2-" -v u="$3" 'index($0, b) == 1 {for (i = 2; i < NF; i++) if ($(i + 1) == u) print $i}' "$1" |
		sort -n | awk '{v[NR] = $1} END {if (NR == 0) exit 1; printf "%.2f\n", v[int((NR + 1) / 2)]}' ||
		{ echo "bench-discovery: no $3 for $2 in $1" >&2 && touch "$work/missing"; }
}
a=$work/agent.txt w=$work/web.txt
rm -f "$work/missing"
section=$(cat <<EOT

## discovery

Written by \`scripts/bench.sh discovery\` (scripts/bench-discovery.sh) on $(date -u '+%Y-%m-%d %H:%M UTC');
load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (shared). Each figure is the median
of $REPEAT runs of one pass, in one Go test process (the agent's code, or the service's handler and store);
allocated is what the process allocated during the pass, heap is the live heap after a collection.

- The agent: \`go test -run '^\$' -bench 'ZoneTransfer100k|LDAPRead10k' -benchtime 1x ./agent/\`: a generated
  zone of 100,000 A names transferred from Debian's NSD on loopback (AXFR, TSIG) and turned into candidates
  under an allow-list that permits 65,536 of them; 10,000 certificates (and a CA's) read from Debian's slapd
  on loopback with a paged search (pages of 500).
- The service: \`go test -run '^\$' -bench 'StoreLDAPPost10k|StoreProposalPost65k' -benchtime 1x ./web/\`: those
  10,000 certificates (and the CA's) posted by a claimed agent to \`/api/v1/agent/ldap-certs\`, and 65,536
  candidates to \`/api/v1/agent/discovered\`, each parsed, checked and stored in one transaction of PostgreSQL
  on the same machine; first post (all new), then the same post again (all seen).

| pass | seconds | MiB allocated | live heap MiB |
|---|---|---|---|
| agent: zone of 100,000 names, transfer and candidates | $(m "$a" ZoneTransfer100k s/pass) | $(m "$a" ZoneTransfer100k MiB-alloc) | $(m "$a" ZoneTransfer100k MiB-heap-records) with the zone held, $(m "$a" ZoneTransfer100k MiB-heap) with the candidates only |
| agent: 10,000 LDAP certificates read | $(m "$a" LDAPRead10k s/pass) | $(m "$a" LDAPRead10k MiB-alloc) | $(m "$a" LDAPRead10k MiB-heap-certs) with the certificates held |
| service: 10,001 LDAP certificates stored, new ($(m "$w" StoreLDAPPost10k MiB-body) MiB of JSON) | $(m "$w" StoreLDAPPost10k s/new) | $(m "$w" StoreLDAPPost10k MiB-alloc/new) | |
| service: the same post again, seen | $(m "$w" StoreLDAPPost10k s/seen) | $(m "$w" StoreLDAPPost10k MiB-alloc/seen) | |
| service: 65,536 proposals stored, new ($(m "$w" StoreProposalPost65k MiB-body) MiB of JSON) | $(m "$w" StoreProposalPost65k s/new) | $(m "$w" StoreProposalPost65k MiB-alloc/new) | |
| service: the same post again, seen | $(m "$w" StoreProposalPost65k s/seen) | $(m "$w" StoreProposalPost65k MiB-alloc/seen) | |
EOT
)
if [ -e "$work/missing" ]; then
	echo "bench-discovery: a figure is missing (above); nothing written" >&2
	exit 1
fi
printf '%s\n' "$section"
