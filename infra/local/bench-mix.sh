#!/usr/bin/env bash
# The mixer benchmark, run by `make bench-mix` inside the local stack's environment
# (stack.py run, for nginx-rtmp and the publish hook): for each N in BENCH_MIX_NS (default
# "9 25"), roomrec-media's Mixer (in the bench process) and the `ffmpeg` program mix the same N
# live 640x360 participants into 1920x1080 30 fps, one after the other, measured over
# BENCH_MIX_SECS (default 60) each; then SSIM of both against the uncompressed composite.
# Not a test: `make test` does not run it. The report is printed and kept in
# target/bench-mix.md; the inputs are cached in target/bench-mix/inputs-*.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_RTMP_URL:?run me through 'make bench-mix' (infra/local/stack.py run -- ...)}"

cargo build --release -p roomrec-bench-mix
target/release/bench-mix | tee target/bench-mix.md.partial
mv target/bench-mix.md.partial target/bench-mix.md
echo "bench-mix: report written to target/bench-mix.md" >&2
