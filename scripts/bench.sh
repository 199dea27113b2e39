#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make bench: starts a throwaway PostgreSQL and the server, loads it with
# keychest-bench (a new connection per command, like the shell clients),
# measures Redis and pgbench on the same machine in the same run, and
# writes docs/benchmarks.md. Each figure is the median of REPEAT runs of
# SECONDS each. Takes about ten minutes.
#   scripts/bench.sh agent   only keychest-agent's figures
#                            (scripts/bench-agent.sh, about a minute),
#                            replacing their section of docs/benchmarks.md
#   scripts/bench.sh discovery  only discovery's figures (scripts/bench-
#                            discovery.sh, about two minutes), likewise
set -Eeuo pipefail
# A failing step stops the run (set -e); say which one.
trap 'echo "bench: failed at scripts/bench.sh line $LINENO (exit $?); see .local/bench/*.err" >&2' ERR
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
SECONDS_EACH=${SECONDS_EACH:-5}
HOSTILE_SECONDS=${HOSTILE_SECONDS:-7}
OUT=${OUT:-docs/benchmarks.md}

# replace HEADING SCRIPT: run SCRIPT alone and put what it prints in
# place of $OUT's "## HEADING" section.
replace() {
	local section
	section=$("$2")
	# drop the old section (up to the next "## " heading), then append the new one
	awk -v h="## $1" '$0 == h {skip = 1; next} skip && /^## / {skip = 0} !skip' "$OUT" |
		sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$OUT.new"
	printf '%s\n' "$section" >>"$OUT.new"
	mv "$OUT.new" "$OUT"
	echo "bench: $1 figures written to $OUT" >&2
}
case "${1:-}" in
agent)
	replace keychest-agent scripts/bench-agent.sh
	exit 0
	;;
discovery)
	replace discovery scripts/bench-discovery.sh
	exit 0
	;;
esac

scripts/deps.sh bench
load_start=$(cut -d' ' -f1-3 /proc/loadavg) # other work on the machine skews every figure
make -s build
go build -o bin/keychest-bench ./cmd/keychest-bench

work=.local/bench
scripts/pg.sh stop "$work" 2>/dev/null || true
rm -rf "$work" && mkdir -p "$work"
url=$(scripts/pg.sh start "$work")
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
server_pid="" redis_pid=""
cleanup() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null
	scripts/pg.sh stop "$work"
}
trap cleanup EXIT

free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 22000))
		(exec 9<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

# The server, with limits that do not get in the way of a load test.
port=$(free_port)
KEYCHEST_DATABASE_URL=$url KEYCHEST_LISTEN=127.0.0.1:$port KEYCHEST_HTTP_LISTEN=127.0.0.1:0 KEYCHEST_MONITOR_RESOLVER=127.0.0.1:1 \
	KEYCHEST_MAX_CONNS_PER_IP=1000000 KEYCHEST_IDLE_TIMEOUT=5m KEYCHEST_LIMIT_KEYS_PER_IP_HOUR=0 \
	KEYCHEST_LIMIT_CLAIMS_PER_IP_HOUR=0 KEYCHEST_LIMIT_MAILS_PER_DAY=100000000 \
	KEYCHEST_LIMIT_UNCONFIRMED_KEYS=100000000 KEYCHEST_MAX_DOMAINS_PER_KEY=100000000 KEYCHEST_MONITOR_PORTS=1-65535 \
	bin/keychest-lined >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
	(exec 9<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

# Redis from Debian's packages: the same round trip in a mature C server.
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --protected-mode no --save "" --appendonly no >"$work/redis.log" 2>&1 &
redis_pid=$!
sleep 0.5

# measure LABEL ARGS...: one keychest-bench measurement, kept as a TSV line.
declare -A row
measure() {
	local label=$1
	shift
	row[$label]=$(bin/keychest-bench -d "${SECONDS_EACH}s" -repeat "$REPEAT" -format tsv "$@")
	echo "  $label: ${row[$label]}" >&2
}
ours() { measure "$1" -addr "127.0.0.1:$port" -pid "$server_pid" "${@:2}"; }
redis_ours() { measure "$1" -redis -addr "127.0.0.1:$rport" -pid "$redis_pid" "${@:2}"; }
# median of the numbers on stdin
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# redis-benchmark opens every connection from 127.0.0.1, and at tens of
# thousands a second it can run out of local ports ("Cannot assign
# requested address": Linux reuses a TIME_WAIT port on loopback only after
# a second). A run that fails that way goes again, after a pause that lets
# the ports age; after three failures the figure is left out (0).
redis_benchmark_once() { # C -> requests/s
	local try out
	for try in 1 2 3; do
		if out=$(redis-benchmark -p "$rport" -k 0 -t ping_inline -c "$1" -n $((1 == $1 ? 20000 : 100000)) --csv \
			2>>"$work/redis-benchmark.err" | awk -F'"' '/PING_INLINE/ {print $4}'); then
			echo "$out"
			return
		fi
		echo "bench: redis-benchmark failed (try $try of 3); see $work/redis-benchmark.err" >&2
		sleep 2
	done
	echo 0
}
redis_benchmark() { # C -> requests/s, median of REPEAT
	for _ in $(seq 1 "$REPEAT"); do
		redis_benchmark_once "$1"
	done | median
}
pgbench_tps() { # C -> tps, median of REPEAT
	for _ in $(seq 1 "$REPEAT"); do
		"$pgbin/pgbench" -n -c "$1" -j 2 -T "$SECONDS_EACH" -f "$work/insert.sql" "$url" 2>>"$work/pgbench.err" |
			awk '/^tps/ {print int($3)}'
	done | median
}

# PostgreSQL's CPU (issue 12): clock ticks of the postmaster and its
# children, plus the children it reaped (pgbench's backends end with their
# connections), from /proc. Read around a run and divided by the rows the
# run committed.
pgdata=$(psql -Atq "$url" -c 'show data_directory')
pm=$(head -n 1 "$pgdata/postmaster.pid")
hz=$(getconf CLK_TCK)
pgticks() {
	local t=0 p
	t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
	for p in $(ps -o pid= --ppid "$pm"); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}
rows() { psql -Atq "$url" -c "SELECT count(*) FROM $1"; }
# us_per_row TICKS_BEFORE TICKS_AFTER ROWS_BEFORE ROWS_AFTER
us_per_row() { awk -v t="$(($2 - $1))" -v r="$(($4 - $3))" -v hz="$hz" 'BEGIN {printf "%.0f", (r > 0 ? t * 1e6 / hz / r : 0)}'; }

echo "bench: peers" >&2
rb64=$(redis_benchmark 64)
rb1=$(redis_benchmark 1)
psql -q "$url" -c "CREATE TABLE bench_kv (k bigint PRIMARY KEY, v int)"
printf '\\set k random(1, 2000000000)\nINSERT INTO bench_kv VALUES (:k, 1) ON CONFLICT DO NOTHING;\n' >"$work/insert.sql"
t0=$(pgticks) r0=$(rows bench_kv)
pg64=$(pgbench_tps 64)
pgcpu_insert=$(us_per_row "$t0" "$(pgticks)" "$r0" "$(rows bench_kv)")
pg1=$(pgbench_tps 1)
redis_ours redis64 -c 64
redis_ours redis1 -c 1

echo "bench: keychest-lined" >&2
ours ping64 -c 64 -mix ping
ours ping1 -c 1 -mix ping
ours ping256 -c 256 -mix ping
ours pingidle -c 64 -mix ping -idle 10000
ours pingnonl -c 64 -mix ping -newline=false
t0=$(pgticks) r0=$(rows domains)
ours add64 -c 64 -mix add
pgcpu_add=$(us_per_row "$t0" "$(pgticks)" "$r0" "$(rows domains)")
echo "  PostgreSQL CPU per add: $pgcpu_add us; per pgbench insert: $pgcpu_insert us" >&2
ours add256 -c 256 -mix add
ours apikey64 -c 64 -mix apikey
ours claim64 -c 64 -mix claim
row[long]=$(bin/keychest-bench -addr "127.0.0.1:$port" -pid "$server_pid" -d 30s -c 64 -mix ping=2,add=1,apikey=1 -format tsv)
echo "  long: ${row[long]}" >&2

# Hostile (issue 12): the attack mix against each server in turn, REPEAT
# rounds of HOSTILE_SECONDS, while one honest client pings on new
# connections; the figures are the medians over the rounds, per column.
echo "bench: hostile" >&2
medians() { # TSV rows on stdin -> one row of the median of each of the 9 numeric columns
	local rows i out=""
	rows=$(cat)
	for i in $(seq 1 9); do out+=$(printf '%s\n' "$rows" | cut -f"$i" | median)$'\t'; done
	printf '%s\n' "${out%$'\t'}"
}
hostile() { bin/keychest-bench -c 1 -hostile -d "${HOSTILE_SECONDS}s" -format tsv "$@"; }
hostile_ours="" hostile_redis=""
for _ in $(seq 1 "$REPEAT"); do
	hostile_ours+=$(hostile -addr "127.0.0.1:$port" -pid "$server_pid" -mix ping)$'\n'
	hostile_redis+=$(hostile -redis -addr "127.0.0.1:$rport" -pid "$redis_pid")$'\n'
done
row[hostile]=$(printf '%s' "$hostile_ours" | medians)
row[hostile_redis]=$(printf '%s' "$hostile_redis" | medians)
echo "  hostile: ${row[hostile]}; Redis: ${row[hostile_redis]}" >&2

# 1,000 clients that each pipeline 65,000 bytes of "command help" lines and
# never read (issue 12, defect 3): the server's peak RSS.
rss_before=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status")
pipeline_peak=$(bin/keychest-bench -addr "127.0.0.1:$port" -pid "$server_pid" -pipeline 1000)
echo "  pipeline: peak RSS $pipeline_peak MB (before: $rss_before MB)" >&2

f() { echo "${row[$1]}" | cut -f"$2"; } # field of a row: 1 rate 2 p50 3 p90 4 p99 5 max 6 >=100ms 7 failed 8 rss 9 cpu 10 errors 11 server us/cmd 12 client us/cmd
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
# CPU per command at C=64 (us): what the client, the server and PostgreSQL
# spend on one ping and one add. They share the machine's cores, so while
# the cores are the limit, add/ping cannot exceed cpu_ping/cpu_add.
cpu_ping=$(($(f ping64 12) + $(f ping64 11)))
cpu_add=$(($(f add64 12) + $(f add64 11) + pgcpu_add))
echo "  CPU per command: ping $cpu_ping us, add $cpu_add us; add/ping at most $(ratio "$cpu_ping" "$cpu_add") while the cores are the limit" >&2
line() { # label key peer-rate peer-name
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %sx %s |\n' "$1" "$(f "$2" 1)" "$(f "$2" 2)" "$(f "$2" 4)" \
		"$(f "$2" 5)" "$(f "$2" 6)" "$(f "$2" 7)" "$(f "$2" 8)" "$(f "$2" 9)" "$(ratio "$(f "$2" 1)" "$3")" "$4"
}

{
	cat <<EOT
# Benchmarks

Written by \`make bench\` (scripts/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'); analysis and
targets in [performance.md](performance.md).

- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB;
  $(uname -sr); $(go version | cut -d' ' -f3); PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'),
  Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'). Client and servers on this one machine.
- Load average (1, 5, 15 min) at the start: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg).
  The machine is shared: with a load well above its 2 cores, every figure is lower and noisier.
- keychest-bench opens a NEW connection for every command, sends one line (with a newline unless
  said), reads the reply, closes; source addresses spread over 127.0.0.2 and up. Server: one evio
  loop, 64 workers, 16 PostgreSQL connections, logging every command (JSON, info level).
- Each figure is the median of $REPEAT runs of ${SECONDS_EACH} s (max: the worst run; failed and
  slow counts: summed). Rates are commands per second; latencies in ms from connect to reply.
- Peers, same run: \`redis-benchmark -k 0 -t ping_inline -c C\` (a new connection per request);
  Redis measured with keychest-bench's own client (\`-redis\`: PING on a new connection), so
  that both servers face the same client; \`pgbench -c C -j 2\` running a one-row
  \`INSERT ... ON CONFLICT DO NOTHING\` over persistent connections.

| peer | C | rate |
|---|---|---|
| redis-benchmark ping_inline | 64 | $rb64 |
| redis-benchmark ping_inline | 1 | $rb1 |
| Redis, keychest-bench client | 64 | $(f redis64 1) (p99 $(f redis64 4) ms) |
| Redis, keychest-bench client | 1 | $(f redis1 1) (p99 $(f redis1 4) ms) |
| pgbench one-row insert | 64 | $pg64 |
| pgbench one-row insert | 1 | $pg1 |

| keychest-lined | rate | p50 | p99 | max | replies >= 100 ms | failed | server RSS MB | server CPU s | ratio |
|---|---|---|---|---|---|---|---|---|---|
$(line "ping, C=64" ping64 "$(f redis64 1)" "Redis (same client)")
$(line "ping, C=64 (vs redis-benchmark)" ping64 "$rb64" "redis-benchmark")
$(line "ping, C=1" ping1 "$(f redis1 1)" "Redis (same client)")
$(line "ping, C=256" ping256 "$(f ping64 1)" "ping C=64")
$(line "ping, C=64, 10,000 idle connections open" pingidle "$(f ping64 1)" "ping C=64")
$(line "ping without newline (echo -ne), C=64" pingnonl "$(f ping64 1)" "ping C=64")
$(line "add, C=64 (vs pgbench; target 1.0x or more)" add64 "$pg64" "pgbench C=64")
$(line "add, C=64 (vs Redis)" add64 "$(f redis64 1)" "Redis (same client)")
$(line "add, C=64 (vs ping; for reference)" add64 "$(f ping64 1)" "ping C=64")
$(line "add, C=256" add256 "$(f add64 1)" "add C=64")
$(line "apikey, C=64" apikey64 "$(f redis64 1)" "Redis (same client)")
$(line "claim, C=64" claim64 "$(f redis64 1)" "Redis (same client)")
$(line "30 s mixed run (ping 2 : add 1 : apikey 1), C=64" long "$(f redis64 1)" "Redis (same client)")

PostgreSQL's CPU per committed row (its processes' CPU from /proc over the runs, divided by the
rows they committed): \`add\` at C=64, $pgcpu_add us per domain; pgbench's one-row insert at C=64,
$pgcpu_insert us per row: $(ratio "$pgcpu_add" "$pgcpu_insert")x (target: 0.25x or less).

CPU per command at C=64, in microseconds: keychest-bench's own (getrusage), the server's
(/proc), and PostgreSQL's per committed add (above). Client and servers share the machine's
$(nproc) cores, so while the cores are the limit, add/ping cannot exceed the ratio of the totals.

| command | client | server | PostgreSQL | total |
|---|---|---|---|---|
| ping | $(f ping64 12) | $(f ping64 11) | 0 | $cpu_ping |
| add | $(f add64 12) | $(f add64 11) | $pgcpu_add | $cpu_add |

add/ping bound by CPU: $(ratio "$cpu_ping" "$cpu_add")x; measured: $(ratio "$(f add64 1)" "$(f ping64 1)")x (for reference; the target is add against pgbench, above).

Errors seen (summed over the runs): $(for k in "${!row[@]}"; do e=$(echo "${row[$k]}" | cut -f10); [ -n "$e" ] && printf '%s: %s. ' "$k" "$e"; done; true)

## Honest clients under attack

One honest client pings on a new connection per command (\`command ping\` with a newline; for
Redis \`PING\`), while keychest-bench attacks the same server (\`-hostile\`): 1,500 slowloris
connections each sending one byte every 200 ms, and two connections each flooding junk bytes, NUL
bytes and 65 KB lines without reading (a new connection whenever the server closes one). The
attack runs against keychest-lined and Redis in turn, $REPEAT rounds of ${HOSTILE_SECONDS} s each;
figures are medians over the rounds. Target: honest p99 at most 1.5x Redis's.

| server under attack | honest rate | p50 | p99 | max | server RSS MB | server CPU s |
|---|---|---|---|---|---|---|
| keychest-lined | $(f hostile 1) | $(f hostile 2) | $(f hostile 4) | $(f hostile 5) | $(f hostile 8) | $(f hostile 9) |
| Redis | $(f hostile_redis 1) | $(f hostile_redis 2) | $(f hostile_redis 4) | $(f hostile_redis 5) | $(f hostile_redis 8) | $(f hostile_redis 9) |

Honest p99: $(ratio "$(f hostile 4)" "$(f hostile_redis 4)")x Redis's (target: 1.5x or less).

## Pipelining without reading

1,000 connections each send 65,000 bytes of \`command help\` lines (over 1 MB of replies each)
and read nothing (\`keychest-bench -pipeline 1000\`): the server's peak RSS was $pipeline_peak MB
($rss_before MB before). The server holds at most 4 KiB of replies per connection and stops reading
from it until the client reads.
EOT
} >"$OUT"
echo "bench: wrote $OUT" >&2

# keychest-amp: the latency the proxy adds to an ACME POST (its p50 against
# the same POST straight to the server, in the same run) and the memory of
# an open tunnel. Go benchmarks in amp/bench_test.go; one row per run.
go test -run '^$' -bench 'AddedLatency|TunnelMemory' -benchtime 2000x -count "$REPEAT" ./amp/ >"$work/amp.txt"
metric() { grep "^Benchmark$1" "$work/amp.txt" | grep -o "[0-9.]* $2" | cut -d' ' -f1 | paste -sd' '; }
{
	echo
	echo "## keychest-amp"
	echo
	echo "ACME POST of a JWS over a kept-alive connection to a loopback TLS server answering like a CA,"
	echo "straight and through keychest-amp (TLS terminated, relayed, understood, journaled, queued),"
	echo "2000 requests each, p50 in µs per run; memory (heap and stacks) per open idle tunnel."
	echo
	echo "| figure | runs |"
	echo "|---|---|"
	echo "| direct p50 µs | $(metric AddedLatency direct-p50-µs) |"
	echo "| through the proxy p50 µs | $(metric AddedLatency proxy-p50-µs) |"
	echo "| added p50 µs (target: under 1000) | $(metric AddedLatency added-p50-µs) |"
	echo "| KiB per open tunnel | $(metric TunnelMemory KiB/tunnel) |"
} >>"$OUT"
echo "bench: keychest-amp figures added to $OUT" >&2

# The certificate monitor (issue 10): keychest-monbench registers
# MON_TARGETS names spread over 16 TLS servers on 127.0.0.2-17, runs two
# rounds with scheduling and storage (the first sees every certificate for
# the first time, the second nothing new), and reads PostgreSQL's own
# table statistics for the rows written per unchanged probe.
psql_url=${url%%/keychest\?*}
"$pgbin/psql" -q "$psql_url/postgres" -c "DROP DATABASE IF EXISTS monbench" -c "CREATE DATABASE monbench"
go build -o bin/keychest-monbench ./cmd/keychest-monbench
monitor_rows=$(bin/keychest-monbench -db "$psql_url/monbench?sslmode=disable" -targets "${MON_TARGETS:-20000}")
{
	echo
	echo "## Certificate monitor"
	echo
	echo "\`keychest-monbench -targets ${MON_TARGETS:-20000}\`: probes with their scheduling (leases, FOR UPDATE SKIP LOCKED) and"
	echo "their storage (one write-back transaction per batch) against TLS servers on loopback, names resolved in process."
	echo "Load average at the start of this bench: $load_start. Target: 500 probes/s or more, at most one row"
	echo "written per unchanged probe."
	echo
	echo "| run | figure | per 6-hour round |"
	echo "|---|---|---|"
	echo "$monitor_rows"
	echo
	echo "The rows counted are tuple writes: an unchanged probe writes its target's row twice (the lease, then"
	echo "the result and the release), and nothing else; history rows are written only when something changed."
} >>"$OUT"
echo "bench: monitor figures added to $OUT" >&2

# keychest-agent (issue 22): relayed against direct probes, the agent's CPU
# per relayed probe and its idle RSS, on a PostgreSQL of its own.
scripts/bench-agent.sh >>"$OUT"
echo "bench: keychest-agent figures added to $OUT" >&2

# Discovery (issue 23): a zone and an LDAP store read by the agent, and
# the service storing what it posts, on a PostgreSQL of its own.
scripts/bench-discovery.sh >>"$OUT"
echo "bench: discovery figures added to $OUT" >&2
