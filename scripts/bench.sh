#!/usr/bin/env bash
# The benchmarks: builds flotte-bench in release mode, starts a throw-away
# PostgreSQL for the PostgreSQL figures, and writes BENCHMARKS.md.
# Usage: scripts/bench.sh [suite ...] [--devices 1000,10000] [--laptops 1000]   (suites: apple, directory, windows)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-deps.sh
cargo build --release -p flotte-tests --bin flotte-bench
target=${CARGO_TARGET_DIR:-target}
pg_dir=$(mktemp -d /tmp/flotte-bench-pg.XXXXXX)
trap 'scripts/postgres.sh stop "$pg_dir"' EXIT
eval "$(scripts/postgres.sh start "$pg_dir" "${FLOTTE_BENCH_PG_PORT:-55433}")"
"$target/release/flotte-bench" --postgres "$TEST_POSTGRES_URL" "$@"
