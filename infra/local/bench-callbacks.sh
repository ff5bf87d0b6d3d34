#!/usr/bin/env bash
# The callback delivery benchmark, run by `make bench-callbacks` inside the local stack's
# environment (stack.py run): a release roomrec-deliverer (the Lambda's handler fed from the
# events queue) delivers BENCH_EVENTS events (default 10000) over BENCH_JOBS jobs (default 100)
# to a receiver the bench runs. Not a test: `make test` does not run it. The table is printed
# and kept in target/bench-callbacks.md; the deliverer's log stays in the stack's state dir.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through 'make bench-callbacks' (infra/local/stack.py run -- ...)}"

cargo build --release -p roomrec-deliverer -p roomrec-bench-callbacks
deliverer_log="$ROOMREC_STATE_DIR/deliverer.log"
RUST_LOG="${RUST_LOG:-warn}" target/release/roomrec-deliverer >"$deliverer_log" 2>&1 &
deliverer_pid=$!
stop_deliverer() {
  kill "$deliverer_pid" 2>/dev/null || true
  wait "$deliverer_pid" 2>/dev/null || true
}
trap stop_deliverer EXIT

if ! target/release/bench-callbacks | tee target/bench-callbacks.md.partial; then
  echo "--- deliverer log (last 40 lines) ---" >&2; tail -n 40 "$deliverer_log" >&2
  exit 1
fi
mv target/bench-callbacks.md.partial target/bench-callbacks.md
echo "bench-callbacks: table written to target/bench-callbacks.md" >&2
