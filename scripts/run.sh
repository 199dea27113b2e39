#!/usr/bin/env bash
# make run: starts keychest-lined in the foreground. With no
# KEYCHEST_DATABASE_URL it installs PostgreSQL if needed and starts (or
# reuses) a private cluster under .local/pg in this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${KEYCHEST_DATABASE_URL:-}" ]; then
	scripts/deps.sh run
	KEYCHEST_DATABASE_URL=$(scripts/pg.sh start .local/pg)
	export KEYCHEST_DATABASE_URL
	echo "run: using the local PostgreSQL at $KEYCHEST_DATABASE_URL (scripts/pg.sh stop .local/pg stops it)" >&2
fi
exec bin/keychest-lined "$@"
