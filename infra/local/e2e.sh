#!/usr/bin/env bash
# One phase of the end-to-end tier, run inside a local stack by infra/local/test.sh:
#   api       no worker or deliverer beside the stack (the tests start their own where they need
#             one); then schemathesis against the OpenAPI document (infra/local/api-fuzz.sh) and
#             the seed-body mutator (infra/local/api-mutate.py)
#   takeover  a stack of its own, no worker: the tests start and kill their own workers, which
#             would take over the jobs other suites leave queued (and fill their capacity)
#   worker    the stack runs a roomrec-worker and the callback deliverer
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through infra/local/test.sh (stack.py run -- ...)}"

# The end-to-end test targets are built only with `--features e2e`.
e2e=(--features e2e)
case "${1:?usage: e2e.sh api|takeover|worker}" in
  api)
    cargo test -p roomrec-testkit "${e2e[@]}" receiver
    # Without the lowercase no_proxy the stack exports: libavformat would bypass the stream
    # guard's proxy for the hosts it names, so the guard refuses http(s) pulls while it is set.
    env -u no_proxy cargo test -p roomrec-media "${e2e[@]}" --test recorder --test mix
    # Every recording test again on libavformat's RTMP client, the reader the worker had
    # before its own (ROOMREC_RTMP_READER); both must record the same.
    env -u no_proxy ROOMREC_RTMP_READER=libav cargo test -p roomrec-media "${e2e[@]}" --test recorder --test mix
    cargo test -p roomrec-tests "${e2e[@]}" --test e2e
    # Starts its own deliverers (compressed retry schedule; private addresses refused) on
    # queues of its own, and a gateway that refuses private callback URLs. About 100 s.
    cargo test -p roomrec-tests "${e2e[@]}" --test callback_processes
    # Schemathesis against the gateway with the served OpenAPI document, 1.5 min.
    bash infra/local/api-fuzz.sh
    # The seed bodies (events/, the OpenAPI examples) mutated over every writable route: 1,200
    # requests, no 5xx, no internal text in any answer. Under a minute.
    .venv/bin/python infra/local/api-mutate.py
    ;;
  takeover)
    # One test at a time: each runs the only workers of the stack.
    cargo test -p roomrec-tests "${e2e[@]}" --test takeover -- --test-threads=1
    ;;
  worker)
    # With the web console's test in Debian's chromium (tests/tests/worker/console.rs).
    cargo test -p roomrec-tests "${e2e[@]}" --test worker
    cargo test -p roomrec-tests "${e2e[@]}" --test callbacks
    ;;
  *)
    echo "usage: e2e.sh api|takeover|worker" >&2
    exit 2
    ;;
esac
