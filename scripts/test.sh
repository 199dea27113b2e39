#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make test: every test, from a fresh clone. Installs what is missing
# (scripts/deps.sh test), starts a private PostgreSQL for the tests under
# .local/pgtest, then runs go vet, the Go tests (unit and integration,
# with the race detector), short fuzz runs, and the bats tests: the seed's
# client, the hooks, and certbot against Pebble.
set -euo pipefail
cd "$(dirname "$0")/.."
# Fuzz budgets: FUZZTIME (a duration like 10m, or a count like 500000x)
# for every target when set; otherwise a count per target, about 10 s of
# work each here. A count, not a duration: with a duration, Go 1.26's fuzz
# coordinator can report its own deadline as "context deadline exceeded"
# and fail a run that found nothing (golang/go#75804, fixed in Go 1.27).
declare -A fuzz_budget=([FuzzParseLine]=300000x [FuzzFramer]=400000x [FuzzSession]=12000x [FuzzMux]=40000x [FuzzParseDomain]=400000x)

scripts/deps.sh test
url=$(scripts/pg.sh start .local/pgtest)
trap 'scripts/pg.sh stop .local/pgtest' EXIT
export KEYCHEST_TEST_DATABASE_URL=${url%%/keychest\?*}/postgres?sslmode=disable
# Every server a test starts runs the certificate monitor; its names are
# resolved by a closed port on loopback unless a test gives its own DNS
# server, so that no test ever asks the machine's resolver.
export KEYCHEST_MONITOR_RESOLVER=127.0.0.1:1

echo "== go vet"
go vet ./...
go vet -tags faults ./test/faults/

echo "== go test"
go test -race -count=1 ./...

echo "== fuzz"
for target in FuzzParseLine FuzzFramer FuzzSession FuzzMux FuzzParseDomain; do
	pkg=$(grep -l "func $target(" ./*/*_test.go | xargs -n1 dirname | head -n 1)
	go test -run '^$' -fuzz "^$target\$" -fuzztime "${FUZZTIME:-${fuzz_budget[$target]}}" "$pkg"
done

echo "== faults (database down, kill -9, floods, hostile input; own PostgreSQL)"
go test -tags faults -count=1 -timeout 15m ./test/faults/

echo "== bats (bash and ksh93)"
bats test/bats | tee .local/bats.tap
passed=$(grep -c '^ok ' .local/bats.tap || true)
echo "bats: $passed passed, 0 failed"
