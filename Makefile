# Local development and CI entry points. `make up` on a fresh Debian 12 machine installs what
# is missing, builds, and runs the whole stack; `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON := .venv/bin/python
STACK := $(PYTHON) infra/local/stack.py
ADMIN := target/debug/roomrec-admin
# What infra/local/stack.py starts: the gateway, the worker, the callback deliverer and
# roomrec-admin (credentials, the sweeper). The end-to-end tests start the same; benchmarks
# and tools build their own.
STACK_BINS := -p roomrec-gateway -p roomrec-worker -p roomrec-deliverer -p roomrec-admin \
	--bin roomrec-gateway --bin roomrec-worker --bin roomrec-deliverer --bin roomrec-admin

export CARGO_TERM_COLOR ?= never

.PHONY: help install build up down credential test chaos lint-template deploy bench-api bench-worker bench-callbacks bench-mix bench-growth

help:
	@echo "make install        apt packages, .venv with moto, cfn-lint and the SAM CLI (idempotent)"
	@echo "make build          cargo build the binaries the stack runs (gateway, worker, deliverer, admin)"
	@echo "make up             run the local stack on ports 5000/1935/3000 (Ctrl-C stops it)"
	@echo "make down           stop the stack started by make up"
	@echo "make credential ACCOUNT=name   create an API credential on the running stack"
	@echo "make test           every test against a stack on free ports (what CI runs)"
	@echo "make chaos          real faults on a local stack and the table of what they cost (~15 min; CHAOS_CASES=reset,kill for some)"
	@echo "make lint-template  cfn-lint, sam validate --lint and the worker's environment on template.yaml"
	@echo "make deploy         build and push the worker image, then sam build && sam deploy (README, Deploying)"
	@echo "make bench-api      API benchmark against a stack on free ports"
	@echo "make bench-worker   recording worker against ffmpeg, CPU, memory, real time per stream (BENCH_NS=\"1 10 50\", up to 200; BENCH_WINDOW_SECS=30; BENCH_S3=s3s or moto)"
	@echo "make bench-callbacks  callback delivery throughput and latency (BENCH_EVENTS=10000, BENCH_JOBS=100, BENCH_MAX_BACKLOG=100)"
	@echo "make bench-mix      mixer against ffmpeg, CPU and SSIM (BENCH_MIX_NS=\"9 25\", BENCH_MIX_SECS=60)"
	@echo "make bench-growth   an app with 100,000 finished jobs against one with ten (BENCH_GROWTH_JOBS=100000)"

install:
	bash infra/local/install.sh

build: install
	cargo build $(STACK_BINS)

up: install build
	$(STACK) up

down:
	$(STACK) down

credential:
	@test -n "$(ACCOUNT)" || { echo "usage: make credential ACCOUNT=name" >&2; exit 2; }
	@test -f .local/stack.pid -a -f .local/env || { echo "no stack is up: start one with 'make up'" >&2; exit 1; }
	@set -euo pipefail; . .local/env; $(ADMIN) create-credential --account '$(ACCOUNT)'

test: install build
	bash infra/local/test.sh

# Its own workers behind a fault proxy, the stack's deliverer with a compressed retry
# schedule (retries after about 0.2 s, 12 s, 72 s), so a receiver down for a minute is found
# back within the run.
chaos: install build
	ROOMREC_RETRY_SCHEDULE_SCALE=0.04 $(STACK) run --with deliverer -- \
		cargo test -p roomrec-tests --features e2e --test chaos -- --nocapture

lint-template: install
	.venv/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --template template.yaml
	$(PYTHON) infra/local/cfn.py check template.yaml

# The whole system into the AWS account and region of the caller's credentials; the first run
# asks for the stack's parameters (sam deploy --guided) and saves them to samconfig.toml.
deploy: install
	bash infra/deploy.sh

# The gateway runs as a release build here, so the figures measure our code, not debug builds.
bench-api: install build
	cargo build --release -p roomrec-gateway
	ROOMREC_GATEWAY_BIN=target/release/roomrec-gateway $(STACK) run -- bash infra/local/bench-api.sh

# The worker against N ffmpeg processes recording the same N live streams (BENCH_NS, default
# "1 10 50", at most 200; BENCH_WINDOW_SECS, default 30). Release builds, so the figures measure our code.
# The worker's S3 is s3s-fs (installed into target/s3s on first use; BENCH_S3=moto for moto's).
# nginx-rtmp reports each publisher every 30 s (its default) rather than the tests' 5 s, and
# moto keeps objects over 64 KiB in temporary files rather than in its memory: at N = 200
# the hook's calls would keep moto busy and the segments (about 27 MB/s) fill its memory.
bench-worker: install build
	cargo build --release -p roomrec-gateway
	ROOMREC_RTMP_UPDATE_SECS=30 MOTO_S3_DEFAULT_KEY_BUFFER_SIZE=65536 ROOMREC_GATEWAY_BIN=target/release/roomrec-gateway \
		$(STACK) run -- bash infra/local/bench-worker.sh

# Callback delivery: a release roomrec-deliverer delivering BENCH_EVENTS events (default 10000)
# over BENCH_JOBS jobs (default 100), at most BENCH_MAX_BACKLOG (default 100) ahead of the
# receiver, to a receiver on loopback; the table goes to
# target/bench-callbacks.md. Release builds, so the figures measure our code.
bench-callbacks: install build
	cargo build --release -p roomrec-gateway -p roomrec-deliverer -p roomrec-bench-callbacks
	ROOMREC_GATEWAY_BIN=target/release/roomrec-gateway $(STACK) run -- bash infra/local/bench-callbacks.sh

# The mixer (roomrec-media's Mixer, in process) against the ffmpeg program composing the same N
# live streams into 1080p30 (BENCH_MIX_NS, default "9 25"; BENCH_MIX_SECS, default 60): CPU per
# output second and SSIM against the uncompressed composite; the report goes to
# target/bench-mix.md. Release builds, so the figures measure our code.
bench-mix: install build
	cargo build --release -p roomrec-gateway -p roomrec-bench-mix
	ROOMREC_GATEWAY_BIN=target/release/roomrec-gateway $(STACK) run -- bash infra/local/bench-mix.sh

# An app with BENCH_GROWTH_JOBS (default 100000) finished jobs against one with ten, seeded
# straight into moto's jobs table: listings, an automatic-recording join and one job through the
# gateway; the table goes to target/bench-growth.md. Release builds, so the figures measure our code.
bench-growth: install build
	cargo build --release -p roomrec-gateway
	ROOMREC_GATEWAY_BIN=target/release/roomrec-gateway $(STACK) run -- bash infra/local/bench-growth.sh
