#!/usr/bin/env bash
# The recording-worker benchmark, run by `make bench-worker` inside the local stack's environment
# (stack.py run): for each N in BENCH_NS (default "1 10 50", at most 200), CPU and memory of a
# release roomrec-worker recording N live streams to S3 against N ffmpeg processes doing the
# same remux to local files, over BENCH_WINDOW_SECS (default 30), and whether every stream kept
# real time. Not a test: `make test` does not run it.
# The measured worker's S3 is s3s-fs (a Rust S3 server storing objects on the local disk,
# installed into target/s3s on first use) unless BENCH_S3=moto: moto is one Python process,
# and serving every upload of N = 200 it held the worker back on two cores. DynamoDB and SQS
# stay on moto either way.
# The tables are printed and kept in target/bench-worker.md; the worker's log is copied to
# target/bench-worker-worker.log (the stack's state dir is deleted when it stops).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${ROOMREC_HTTP_URL:?run me through 'make bench-worker' (infra/local/stack.py run -- ...)}"

s3s_pid=
keep_logs() {
  [ -z "$s3s_pid" ] || kill "$s3s_pid" 2>/dev/null || true
  cp "$ROOMREC_STATE_DIR/worker.log" target/bench-worker-worker.log 2>/dev/null || true
  cat "$ROOMREC_STATE_DIR"/reference-n*.log > target/bench-worker-reference.log 2>/dev/null || true
}
trap keep_logs EXIT

# s3s-fs on a free port, with the recordings bucket and the credentials the worker inherits
# (the stack's operator session: s3s-fs checks the signature, not the session token).
start_s3s() {
  local bin=target/s3s/bin/s3s-fs root="$ROOMREC_STATE_DIR/s3s" port
  [ -x "$bin" ] || cargo install s3s-fs --version 0.14.1 --features binary --locked --root target/s3s
  mkdir -p "$root/$ROOMREC_RECORDINGS_BUCKET"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
    "$root" >"$ROOMREC_STATE_DIR/s3s.log" 2>&1 &
  s3s_pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      # The SDK (ours, the bench's) takes an S3-only endpoint over AWS_ENDPOINT_URL; the
      # bench reads the segments from the root and finds the server by it.
      export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port" BENCH_S3S_ROOT="$root"
      return
    fi
    kill -0 "$s3s_pid" 2>/dev/null || { cat "$ROOMREC_STATE_DIR/s3s.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "bench-worker: s3s-fs did not listen on port $port within 10 s" >&2
  exit 1
}

case "${BENCH_S3:=s3s}" in
  s3s) start_s3s ;;
  moto) ;;
  *) echo "bench-worker: BENCH_S3 is s3s or moto, not '$BENCH_S3'" >&2; exit 2 ;;
esac

cargo build --release -p roomrec-worker -p roomrec-bench-worker
# BENCH_NS goes up to 200 recordings in the development account, past the default active_jobs
# quota (50); bench-worker's MAX_N.
target/debug/roomrec-admin set-quotas --account dev --active-jobs 200 >/dev/null
target/release/bench-worker | tee target/bench-worker.md.partial
mv target/bench-worker.md.partial target/bench-worker.md
echo "bench-worker: tables written to target/bench-worker.md (worker log: target/bench-worker-worker.log)" >&2
