#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make run: starts keychest-lined in the foreground. With no
# KEYCHEST_DATABASE_URL it installs PostgreSQL if needed and starts (or
# reuses) a private cluster under .local/pg in this checkout. With
# arguments it runs an operator command on that database instead, e.g.
# scripts/run.sh domains --email you@example.com
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KEYCHEST_DATABASE_URL:-}" ]; then
	scripts/deps.sh run
	KEYCHEST_DATABASE_URL=$(scripts/pg.sh start .local/pg)
	export KEYCHEST_DATABASE_URL
	[ $# -gt 0 ] || echo "run: using the local PostgreSQL at $KEYCHEST_DATABASE_URL (scripts/pg.sh stop .local/pg stops it)" >&2
fi
exec bin/keychest-lined "$@"
