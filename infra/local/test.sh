#!/usr/bin/env bash
# Every test, run by `make test` inside the local stack's environment (stack.py run):
# unit tests, the API end-to-end tests (no worker running, so jobs stay as the API left
# them), the worker end-to-end tests against a real roomrec-worker process, cfn-lint.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through 'make test' (infra/local/stack.py run -- ...)}"

# No module of functions/ or worker/ imports one that imports it back.
python3 infra/check-module-cycles.py
# The offline tier: what `cargo test --workspace` runs with nothing started.
cargo test --workspace --no-fail-fast
# The end-to-end tier (`--features e2e`): real nginx-rtmp, ffmpeg publishers, moto, processes.
e2e=(--features e2e)
cargo test -p roomrec-testkit "${e2e[@]}" receiver
cargo test -p roomrec-media "${e2e[@]}" --test recorder --test mix
cargo test -p roomrec-tests "${e2e[@]}" --test e2e
# Starts and kills its own workers; must run while no other worker takes jobs.
cargo test -p roomrec-tests "${e2e[@]}" --test takeover -- --test-threads=1
# Starts its own deliverers (compressed retry schedule; private addresses refused) on queues
# of its own, and a gateway that refuses private callback URLs. About 100 s.
cargo test -p roomrec-tests "${e2e[@]}" --test callback_processes

# The worker and callback phases: a real worker, and the callback deliverer running the
# Lambda's handler against the events queue (it also delivers the worker tests' events).
worker_log="$ROOMREC_STATE_DIR/worker.log"
deliverer_log="$ROOMREC_STATE_DIR/deliverer.log"
target/debug/roomrec-deliverer >"$deliverer_log" 2>&1 &
deliverer_pid=$!
ROOMREC_SPOOL_DIR="$ROOMREC_STATE_DIR/spool" target/debug/roomrec-worker >"$worker_log" 2>&1 &
worker_pid=$!
stop_services() {
  kill "$worker_pid" "$deliverer_pid" 2>/dev/null || true
  wait "$worker_pid" "$deliverer_pid" 2>/dev/null || true
}
trap stop_services EXIT
if ! cargo test -p roomrec-tests "${e2e[@]}" --test worker; then
  echo "--- worker log (last 60 lines) ---"; tail -n 60 "$worker_log"
  exit 1
fi
if ! cargo test -p roomrec-tests "${e2e[@]}" --test callbacks; then
  echo "--- deliverer log (last 60 lines) ---"; tail -n 60 "$deliverer_log"
  exit 1
fi
stop_services
trap - EXIT

.venv/bin/cfn-lint template.yaml infra/worker/worker-service.yaml
echo "cfn-lint: template.yaml and infra/worker/worker-service.yaml ok"
