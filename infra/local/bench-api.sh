#!/usr/bin/env bash
# The API benchmark, run by `make bench-api` inside the local stack's environment (stack.py run):
# per-route latency through the gateway against moto alone, and apps-api's cold start. Not a test:
# `make test` does not run it. The tables are printed and kept in target/bench-api.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through 'make bench-api' (infra/local/stack.py run -- ...)}"

cargo build --release -p apps-api -p roomrec-bench-api
target/release/bench-api --apps-api target/release/apps-api | tee target/bench-api.md.partial
mv target/bench-api.md.partial target/bench-api.md
echo "bench-api: tables written to target/bench-api.md" >&2
