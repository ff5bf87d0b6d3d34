#!/usr/bin/env bash
# Every test, as `make test` runs them: the lints and the offline tier with nothing started,
# then the end-to-end tier in three local stacks (stack.py supervises every process): the API
# and media tests with no worker running, so jobs stay as the API left them; the takeover
# tests, whose own workers must find no other suite's jobs; then the worker and callback tests
# with a real roomrec-worker and callback deliverer beside the stack.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

stack=(.venv/bin/python infra/local/stack.py run)

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
cargo test --workspace --no-fail-fast

"${stack[@]}" -- bash infra/local/e2e.sh api
"${stack[@]}" -- bash infra/local/e2e.sh takeover
"${stack[@]}" --with worker,deliverer,sweeper -- bash infra/local/e2e.sh worker
