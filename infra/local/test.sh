#!/usr/bin/env bash
# Every test, as `make test` runs them: the lints and the offline tier with nothing started,
# then the end-to-end tier in two local stacks (stack.py supervises every process): the API
# and media tests with no worker running, so jobs stay as the API left them; then the worker
# and callback tests with a real roomrec-worker and callback deliverer beside the stack.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

stack=(.venv/bin/python infra/local/stack.py run)

# No module of functions/ or worker/ imports one that imports it back.
python3 infra/check-module-cycles.py
.venv/bin/cfn-lint template.yaml infra/worker/worker-service.yaml
echo "cfn-lint: template.yaml and infra/worker/worker-service.yaml ok"
# One TLS stack (rustls on aws-lc-rs) for the AWS SDK and reqwest alike.
bash infra/check-tls-stack.sh
# The offline tier: what `cargo test --workspace` runs with nothing started.
cargo test --workspace --no-fail-fast

"${stack[@]}" -- bash infra/local/e2e.sh api
"${stack[@]}" --with worker,deliverer,sweeper -- bash infra/local/e2e.sh worker
