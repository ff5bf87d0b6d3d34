#!/usr/bin/env bash
# Every test, run by `make test` inside the local stack's environment (stack.py run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through 'make test' (infra/local/stack.py run -- ...)}"

cargo test --workspace --no-fail-fast
.venv/bin/cfn-lint template.yaml
echo "cfn-lint: template.yaml ok"
