#!/usr/bin/env bash
# The test suite: every test on SQLite, then the integration tests again on a
# PostgreSQL server started here. Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh

echo "== tests on SQLite"
cargo nextest run --workspace --no-fail-fast

pg_dir=$(mktemp -d /tmp/flotte-pg.XXXXXX)
trap 'scripts/postgres.sh stop "$pg_dir"' EXIT
eval "$(scripts/postgres.sh start "$pg_dir" "${FLOTTE_TEST_PG_PORT:-55432}")"
echo "== integration tests on PostgreSQL"
TEST_POSTGRES_URL=$TEST_POSTGRES_URL cargo nextest run --workspace --no-fail-fast -E 'binary(it)'
