#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# keychest-agent's figures for make bench (issue 22), printed to stdout as
# docs/benchmarks.md's "## keychest-agent" section. scripts/bench.sh runs
# it last; "scripts/bench.sh agent" runs it alone and replaces that
# section in place (about a minute). On its own PostgreSQL.
#   1. relayed probes a second through one agent beside direct probes of
#      the same target, same process, same run: the Go benchmark
#      BenchmarkRelayedVersusDirect (web/agent_bench_test.go), REPEAT runs;
#   2. the real binaries: keychest-lined, and keychest-agent claimed for a
#      site with AGENT_TARGETS names behind it (a loopback DNS stub gives
#      127.0.0.50, where haproxy answers TLS): "once" runs every job, and
#      its own CPU (user + system, from the shell's times) is divided by
#      the probes it relayed, REPEAT runs;
#   3. the same agent as "run", claimed, idle (long-polling, no job): its
#      RSS from /proc, the most of 10 readings over 5 s.
set -Eeuo pipefail
trap 'echo "bench-agent: failed at scripts/bench-agent.sh line $LINENO (exit $?); see .local/bench-agent/" >&2' ERR
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-3}
AGENT_TARGETS=${AGENT_TARGETS:-256}
work=.local/bench-agent

make -s build >&2
scripts/pg.sh stop "$work" 2>/dev/null || true
rm -rf "$work" && mkdir -p "$work"
url=$(scripts/pg.sh start "$work")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	scripts/pg.sh stop "$work"
}
trap cleanup EXIT
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 22000))
		(exec 9<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

# 1. The Go benchmark (64 probes an iteration, each way).
echo "bench-agent: relayed versus direct (go test -bench RelayedVersusDirect)" >&2
KEYCHEST_TEST_DATABASE_URL="${url%%/keychest\?*}/postgres?sslmode=disable" KEYCHEST_MONITOR_RESOLVER=127.0.0.1:1 \
	go test -run '^$' -bench RelayedVersusDirect -benchtime 20x -count "$REPEAT" ./web/ >"$work/relay.txt"
metric() { grep '^BenchmarkRelayedVersusDirect' "$work/relay.txt" | grep -o "[0-9.]* $1" | cut -d' ' -f1; }
direct=$(metric direct-probes/s | median)
relayed=$(metric relayed-probes/s | median)
ratio=$(metric relayed/direct | median)
cpu_direct=$(metric cpu-us/direct | median)
cpu_relayed=$(metric cpu-us/relayed | median)
echo "  direct $direct/s, relayed $relayed/s: ${ratio}x" >&2

# 2. The real binaries.
port=$(free_port)
KEYCHEST_DATABASE_URL=$url KEYCHEST_LISTEN=127.0.0.1:$port KEYCHEST_HTTP_LISTEN=127.0.0.1:0 KEYCHEST_MONITOR_RESOLVER=127.0.0.1:1 \
	KEYCHEST_MAX_DOMAINS_PER_KEY=0 KEYCHEST_LIMIT_KEYS_PER_IP_HOUR=0 KEYCHEST_LIMIT_CLAIMS_PER_IP_HOUR=0 \
	KEYCHEST_MONITOR_PORTS=1-65535 bin/keychest-lined >"$work/server.log" 2>&1 &
pids+=($!)
web=""
for _ in $(seq 1 200); do
	web=$(grep -o '"http":"[^"]*"' "$work/server.log" | head -n 1 | cut -d'"' -f4 || true)
	[ -n "$web" ] && break
	sleep 0.05
done
[ -n "$web" ] || { cat "$work/server.log" >&2; exit 1; }
line() { # one line-protocol command; prints the reply up to its status line
	local l
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	printf '%s\n' "$1" >&3
	while read -r -t 10 l <&3; do
		echo "$l"
		[[ $l == status* ]] && break
	done
	exec 3<&-
}

# The target: haproxy terminating TLS on 127.0.0.50 (many handshakes at once).
tport=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=corp.example \
	-keyout "$work/target.pem" -out "$work/target.crt" 2>/dev/null
cat "$work/target.crt" >>"$work/target.pem"
printf '%s\n' global '  maxconn 4096' defaults '  mode http' '  timeout connect 5s' '  timeout client 10s' \
	'  timeout server 10s' 'frontend tls' "  bind 127.0.0.50:$tport ssl crt $PWD/$work/target.pem" \
	'  http-request return status 200' >"$work/haproxy.cfg"
/usr/sbin/haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
coproc DNS { exec python3 test/bats/fake_dns.py 127.0.0.50; }
pids+=("$DNS_PID")
read -r dns_port <&"${DNS[0]}"

dir=$PWD/$work/agent
mkdir -m 0700 "$dir"
printf 'allow 127.0.0.50/32 %s *.corp.example\n' "$tport" >"$dir/allow.conf"
chmod 0600 "$dir/allow.conf"
agent() { # CMD [FLAGS]: the built agent on this server and DNS
	bin/keychest-agent "$1" -e "$dir" --server "http://$web" --site office --resolver "127.0.0.1:$dns_port" "${@:2}"
}
agent once 2>>"$work/agent.err"
key=$(line 'command apikey' | sed -n 's/^data //p')
line "command claim apikey $key email bench-agent@example.org" >/dev/null
KEYCHEST_DATABASE_URL=$url bin/keychest-lined confirm --email bench-agent@example.org >/dev/null
line "command claim agent $(agent claim-code 2>>"$work/agent.err") apikey $key" | grep -q '^status ok' ||
	{ echo "bench-agent: the claim failed" >&2; exit 1; }

cpu_us=() once_rate=()
for r in $(seq 1 "$REPEAT"); do
	for i in $(seq 1 "$AGENT_TARGETS"); do
		line "command add domain t$i-r$r.corp.example:$tport apikey $key site office" | grep -q '^status ok'
	done
	TIMEFORMAT='%R %U %S'
	{ time agent once --for 50s 2>>"$work/agent.err"; } 2>"$work/time.txt"
	read -r real user sys <"$work/time.txt"
	jobs=$(grep '"code":"AGT0011"' "$dir/agent.log" | tail -n 1 | grep -o '"jobs":[0-9]*' | cut -d: -f2)
	[ "$jobs" -eq "$AGENT_TARGETS" ] || { echo "bench-agent: once ran $jobs jobs of $AGENT_TARGETS" >&2; exit 1; }
	cpu_us+=("$(awk -v u="$user" -v s="$sys" -v n="$jobs" 'BEGIN {printf "%.0f", (u + s) * 1e6 / n}')")
	once_rate+=("$(awk -v t="$real" -v n="$jobs" 'BEGIN {printf "%.0f", n / t}')")
	echo "  once: $jobs relayed probes in $real s, agent CPU ${cpu_us[-1]} us each" >&2
done
relayed_ok=$(psql -Atq "$url" -c "SELECT count(*) FROM agent_job_relays WHERE result->>'class' IS NOT NULL")
cpu=$(printf '%s\n' "${cpu_us[@]}" | median)
rate=$(printf '%s\n' "${once_rate[@]}" | median)

# 3. Idle: run, claimed, nothing due.
bin/keychest-agent run -e "$dir" --server "http://$web" --site office --resolver "127.0.0.1:$dns_port" \
	--log "$work/agent-run.log" 2>>"$work/agent.err" &
run_pid=$!
pids+=("$run_pid")
rss=0
for _ in $(seq 1 10); do
	sleep 0.5
	r=$(awk '/VmRSS/ {print $2}' "/proc/$run_pid/status")
	[ "$r" -gt "$rss" ] && rss=$r
done
rss_mb=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
echo "  idle run: RSS $rss_mb MB" >&2

pass() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN {print ((dir == "min" ? v >= t : v <= t) ? "met" : "**not met**")}'; }
cat <<EOT

## keychest-agent

Written by \`scripts/bench.sh agent\` (scripts/bench-agent.sh) on $(date -u '+%Y-%m-%d %H:%M UTC');
load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (shared: the rates are lower
and noisier under load, their ratio less so).

- Relayed against direct: \`go test -bench RelayedVersusDirect\` (web/agent_bench_test.go), in one
  process and one run: 64 probes an iteration of one TLS target on 127.0.0.50, by the monitor's prober
  directly (64 at once, the agent's parallelism) and through one agent, the whole way of 64 targets
  behind a site (made due, queued by the agent's take, the agent's lookup and dial under
  \`allow.conf\`, the relay, the service's handshake, its writes, the verdicts through the monitor's
  judge and write-back); 20 iterations, median of $REPEAT runs. The CPU figures are that process's
  (agent, service, target and prober together; PostgreSQL's is not in them).
- CPU per relayed probe: the built binaries (keychest-lined, and keychest-agent claimed for a site with
  $AGENT_TARGETS names behind it, resolved by a loopback DNS stub to 127.0.0.50, where haproxy answers
  TLS); \`keychest-agent once\` runs every job; its own CPU (user + system) over the probes it relayed,
  median of $REPEAT runs ($relayed_ok relays stored in all).
- Idle RSS: the same agent as \`run\`, claimed, nothing due (long-polling for jobs), the most of 10
  readings of VmRSS over 5 s.

| figure | value | target | |
|---|---|---|---|
| direct probes/s (Go benchmark) | $direct | | |
| relayed probes/s through one agent (Go benchmark) | $relayed | | |
| relayed / direct | ${ratio}x | at least 0.5x | $(pass "$ratio" 0.5 min) |
| CPU per probe, direct / relayed, µs (Go benchmark, its process) | $cpu_direct / $cpu_relayed | | |
| relayed probes/s, real processes (\`once\`, $AGENT_TARGETS jobs) | $rate | | |
| the agent's CPU per relayed probe, µs | $cpu | (measured) | |
| the agent's RSS when idle, MB | $rss_mb | at most 20 | $(pass "$rss_mb" 20 max) |
EOT
