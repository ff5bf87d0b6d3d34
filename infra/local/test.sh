#!/usr/bin/env bash
# Every test, as `make test` runs them: the lints and the offline tier with nothing started,
# then the end-to-end tier in three local stacks (stack.py supervises every process): the API
# and media tests with no worker running, so jobs stay as the API left them, then the worker
# and callback tests with a real roomrec-worker and callback deliverer beside the stack; all
# the while the takeover tests in a stack of their own, whose own workers must find no other
# suite's jobs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

stack=(.venv/bin/python infra/local/stack.py run)

# Runs a phase and says how long it took (README: make test's time, phase by phase).
timed() {
  local name=$1 start=$SECONDS status=0
  shift
  "$@" || status=$?
  echo "make test: $name took $((SECONDS - start)) s (exit $status)"
  return "$status"
}

# No module of functions/ or worker/ imports one that imports it back.
python3 infra/check-module-cycles.py
# The one deployable template: cfn-lint, SAM's own lint (offline: no region or credentials),
# and the worker's environment against the functions' (infra/local/cfn.py).
.venv/bin/cfn-lint template.yaml
SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --template template.yaml
.venv/bin/python infra/local/cfn.py check template.yaml
echo "template.yaml: cfn-lint, sam validate --lint and the worker's environment ok"
# One TLS stack (rustls on aws-lc-rs) for the AWS SDK and reqwest alike.
bash infra/check-tls-stack.sh
# The offline tier: what `cargo test --workspace` runs with nothing started.
timed "the offline tier (with its build)" cargo test --workspace --no-fail-fast

# The end-to-end test binaries, built once before any stack starts, so the phases below
# (two stacks at once) never wait on each other's build.
build_e2e() {
  cargo test --no-run -p roomrec-testkit --features e2e &&
    cargo test --no-run -p roomrec-media --features e2e --test recorder --test mix &&
    cargo test --no-run -p roomrec-tests --features e2e \
      --test e2e --test callback_processes --test takeover --test worker --test callbacks
}
timed "the end-to-end build" build_e2e

# The takeover tests mostly wait (for leases to lapse, for the next worker's first file), so
# their stack runs beside the other two, which run one after the other; their output follows.
takeover_log=$(mktemp)
timed "the takeover phase" "${stack[@]}" -- bash infra/local/e2e.sh takeover >"$takeover_log" 2>&1 &
takeover=$!
api_status=0 worker_status=0 takeover_status=0
timed "the API phase" "${stack[@]}" -- bash infra/local/e2e.sh api || api_status=$?
timed "the worker phase" "${stack[@]}" --with worker,deliverer,sweeper -- bash infra/local/e2e.sh worker ||
  worker_status=$?
wait "$takeover" || takeover_status=$?
echo "---- takeover phase (ran beside the others; exit $takeover_status) ----"
cat "$takeover_log"
rm -f "$takeover_log"
if [ "$api_status" -ne 0 ] || [ "$worker_status" -ne 0 ] || [ "$takeover_status" -ne 0 ]; then
  echo "end-to-end: api phase exit $api_status, worker phase exit $worker_status, takeover phase exit $takeover_status" >&2
  exit 1
fi
