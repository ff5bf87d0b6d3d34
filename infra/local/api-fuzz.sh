#!/usr/bin/env bash
# Schemathesis against the running stack's gateway with the OpenAPI document it serves: every
# route gets generated valid and invalid requests; the run fails on any 5xx, a status the
# document does not list, or a body, content type or header that does not match it.
# Run by infra/local/e2e.sh api. SCHEMATHESIS_MAX_EXAMPLES (default 50) bounds the cases per
# operation; SCHEMATHESIS_SEED (default fixed) picks them, so a failure is reproducible.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me inside a stack (stack.py run -- ...)}"
: "${ROOMREC_DEV_KEY_ID:?stack.py run exports the dev credential}"

# One worker: with two threads, Hypothesis's ast.parse in CPython 3.11 fails at random
# ("AST constructor recursion depth mismatch"), and one keeps a seed's run reproducible.
# No example database: each run starts from the seed alone. The JUnit report goes to
# target/schemathesis; a failure's reproduction (curl) is printed.
report_dir=target/schemathesis

# The dev account's quotas out of the way: the fuzzer's jobs stay INIT (no worker here), and
# at the default 20 waiting jobs every later create would answer 429 untested.
target/debug/roomrec-admin set-quotas --account dev --active-jobs 100000 --waiting-jobs 100000 >/dev/null

# The document the gateway serves, against the OpenAPI 3.1 meta-schema ($refs resolved).
.venv/bin/python - "$ROOMREC_HTTP_URL/v2/openapi.json" <<'PY'
import json, sys, urllib.request
from openapi_spec_validator import OpenAPIV31SpecValidator
with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    OpenAPIV31SpecValidator(json.load(response)).validate()
print(f"{sys.argv[1]}: valid OpenAPI 3.1")
PY

PYTHONPATH="infra/local${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks \
  .venv/bin/schemathesis run "$ROOMREC_HTTP_URL/v2/openapi.json" \
  --url "$ROOMREC_HTTP_URL" \
  --auth "$ROOMREC_DEV_KEY_ID:$ROOMREC_DEV_SECRET" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-50}" \
  --seed "${SCHEMATHESIS_SEED:-20261129}" \
  --workers 1 \
  --generation-database none \
  --request-timeout 30 \
  --suppress-health-check too_slow,filter_too_much \
  --report junit --report-dir "$report_dir" \
  "$@"
