#!/usr/bin/env bash
# The growth benchmark, run by `make bench-growth` inside the local stack's environment
# (stack.py run): an app with BENCH_GROWTH_JOBS (default 100000) finished jobs against one with
# BENCH_GROWTH_SMALL_JOBS (default 10), seeded straight into moto's jobs table with
# BatchWriteItem (BENCH_GROWTH_SEED_WRITERS requests at once, default 8); then the room's
# active jobs, a listing page, an automatic-recording join and one job, timed through the
# gateway BENCH_GROWTH_REPEATS times (default 50). Not a test: `make test` does not run it.
# BENCH_GROWTH_PROFILE=debug runs the debug build of the bench (the stack runs whatever
# binaries it was started with). The table is printed and kept in target/bench-growth.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through 'make bench-growth' (infra/local/stack.py run -- ...)}"

profile="${BENCH_GROWTH_PROFILE:-release}"
case "$profile" in
  release) cargo build --release -p roomrec-bench-growth ;;
  debug) cargo build -p roomrec-bench-growth ;;
  *) echo "BENCH_GROWTH_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac
"target/$profile/bench-growth" | tee target/bench-growth.md.partial
mv target/bench-growth.md.partial target/bench-growth.md
echo "bench-growth: table written to target/bench-growth.md" >&2
