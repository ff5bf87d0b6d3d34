#!/usr/bin/env bash
# The recording-worker benchmark, run by `make bench-worker` inside the local stack's environment
# (stack.py run): for each N in BENCH_NS (default "1 10 50", at most 200), CPU and memory of a
# release roomrec-worker recording N live streams to S3 against N ffmpeg processes doing the
# same remux to local files, over BENCH_WINDOW_SECS (default 30), and whether every stream kept
# real time. Not a test: `make test` does not run it.
# The tables are printed and kept in target/bench-worker.md; the worker's log is copied to
# target/bench-worker-worker.log (the stack's state dir is deleted when it stops).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through 'make bench-worker' (infra/local/stack.py run -- ...)}"

keep_logs() {
  cp "$ROOMREC_STATE_DIR/worker.log" target/bench-worker-worker.log 2>/dev/null || true
  cat "$ROOMREC_STATE_DIR"/reference-n*.log > target/bench-worker-reference.log 2>/dev/null || true
}
trap keep_logs EXIT

cargo build --release -p roomrec-worker -p roomrec-bench-worker
# BENCH_NS goes up to 200 recordings in the development account, past the default active_jobs
# quota (50); bench-worker's MAX_N.
target/debug/roomrec-admin set-quotas --account dev --active-jobs 200 >/dev/null
target/release/bench-worker | tee target/bench-worker.md.partial
mv target/bench-worker.md.partial target/bench-worker.md
echo "bench-worker: tables written to target/bench-worker.md (worker log: target/bench-worker-worker.log)" >&2
