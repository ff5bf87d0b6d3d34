#!/usr/bin/env bash
# One phase of the end-to-end tier, run inside a local stack by infra/local/test.sh:
#   api     no worker or deliverer beside the stack (the tests start their own where they need one);
#           then schemathesis against the OpenAPI document (infra/local/api-fuzz.sh)
#   worker  the stack runs a roomrec-worker and the callback deliverer
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through infra/local/test.sh (stack.py run -- ...)}"

# The end-to-end test targets are built only with `--features e2e`.
e2e=(--features e2e)
case "${1:?usage: e2e.sh api|worker}" in
  api)
    cargo test -p roomrec-testkit "${e2e[@]}" receiver
    cargo test -p roomrec-media "${e2e[@]}" --test recorder --test mix
    cargo test -p roomrec-tests "${e2e[@]}" --test e2e
    # Starts and kills its own workers; must run while no other worker takes jobs.
    cargo test -p roomrec-tests "${e2e[@]}" --test takeover -- --test-threads=1
    # Starts its own deliverers (compressed retry schedule; private addresses refused) on
    # queues of its own, and a gateway that refuses private callback URLs. About 100 s.
    cargo test -p roomrec-tests "${e2e[@]}" --test callback_processes
    # Schemathesis against the gateway with the served OpenAPI document, 1.5 min. Last:
    # the jobs it creates stay queued, and the takeover test's workers must not find them.
    bash infra/local/api-fuzz.sh
    ;;
  worker)
    cargo test -p roomrec-tests "${e2e[@]}" --test worker
    cargo test -p roomrec-tests "${e2e[@]}" --test callbacks
    ;;
  *)
    echo "usage: e2e.sh api|worker" >&2
    exit 2
    ;;
esac
