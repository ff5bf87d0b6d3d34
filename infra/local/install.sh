#!/usr/bin/env bash
# Installs what the local stack needs on a fresh Debian 12 machine, and nothing twice:
# apt packages only when missing, the Python venv only when absent or broken, pip only when
# the requirements changed. A second run with everything present makes no network call.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.installed"

APT_PACKAGES=(
  libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev
  clang libclang-dev pkg-config
  nginx libnginx-mod-rtmp ffmpeg
  python3-venv curl jq
  # The web console's browser test (tests/console) drives Debian's chromium headless.
  chromium
)

PIP_REQUIREMENTS=(
  "moto[server]>=5.0"
  # Serves moto with keep-alive connections (infra/local/moto_iam.py), as AWS's endpoints do.
  "waitress>=3.0"
  "cfn-lint>=1.0"
  "boto3>=1.34"
  "pyyaml>=6.0"
  # `sam validate --lint` in `make test`, and `sam build` / `sam deploy` (README, Deploying).
  "aws-sam-cli>=1.120"
  # SAM's own translator: the local stack derives each function's role from template.yaml.
  "aws-sam-translator>=1.90"
  "schemathesis>=4.32,<5"
  "openapi-spec-validator>=0.7"
)

log() { printf 'install: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "need root (or sudo) to run: $*"
    exit 1
  fi
}

install_apt_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    # `dpkg -s` also lists removed-but-not-purged packages; require the installed state.
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return
  fi
  log "apt packages missing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  # Debian starts the packaged nginx on port 80 when it installs; the stack runs its own.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
    as_root systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
}

# Rust is not installed here (rustup is the way to get it); this only checks that cargo is on
# PATH and at least the workspace's rust-version (Cargo.toml), before anything else runs.
check_rust() {
  local want have
  want="$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml")"
  [ -n "$want" ] || { log "Cargo.toml states no rust-version"; exit 1; }
  if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: roomrec needs Rust $want or newer. Install it with rustup:"
    log "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh   # then: . \"\$HOME/.cargo/env\""
    exit 1
  fi
  # "cargo 1.95.0 (f2d3ce0bd 2026-03-21)"; a pre-release counts as its version.
  have="$(cargo --version | awk '{print $2}')"
  have="${have%%-*}"
  if [ "$(printf '%s\n' "$want" "$have" | sort -V | head -n1)" != "$want" ]; then
    log "cargo $have is older than Rust $want, which roomrec needs: run 'rustup update stable'"
    log "(or 'rustup default stable' if an older toolchain is the default)"
    exit 1
  fi
}

# Prints the interpreter to build the venv with: the python3 on PATH (pyenv's shim included)
# if it can make venvs, else Debian's own, which python3-venv equips.
venv_python() {
  local candidate
  for candidate in "$(command -v python3 || true)" /usr/bin/python3; do
    [ -n "$candidate" ] && [ -x "$candidate" ] || continue
    if "$candidate" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
  log "no python3 with the venv and ensurepip modules found"
  exit 1
}

ensure_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    return
  fi
  # A venv whose base interpreter is gone (pyenv version removed, repo moved) is rebuilt.
  rm -rf "$VENV"
  local python
  python="$(venv_python)"
  log "creating $VENV with $python"
  "$python" -m venv "$VENV"
}

requirements_hash() {
  {
    printf '%s\n' "${PIP_REQUIREMENTS[@]}"
    "$VENV/bin/python" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
}

install_pip_packages() {
  local want
  want="$(requirements_hash)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    return
  fi
  log "installing Python packages: ${PIP_REQUIREMENTS[*]}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PIP_REQUIREMENTS[@]}"
  echo "$want" >"$STAMP"
}

# Node.js and npm run Huawei Cloud's IAM SDK against the stack (tests/iam-sdk, an e2e test).
# Debian's `nodejs` and `npm` packages, unless a node and npm are already on PATH (NodeSource's
# nodejs bundles npm and conflicts with Debian's npm package).
install_node() {
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    return
  fi
  log "installing nodejs and npm"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
}

# Each npm package directory's pinned packages (its package-lock.json), only when the lock file
# changed: Huawei Cloud's IAM SDK (tests/iam-sdk), the console's hls.js, which its build
# vendors (functions/web-console), playwright-core, which drives chromium through the
# console in its test (tests/console), and Node-Media-Server, the second RTMP server of the
# recorder's tests (worker/media/tests/node-media-server).
NPM_DIRS=(tests/iam-sdk functions/web-console tests/console worker/media/tests/node-media-server)

install_npm_packages() {
  local dir want
  for dir in "${NPM_DIRS[@]}"; do
    dir="$ROOT/$dir"
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [ -f "$dir/node_modules/.installed" ] && [ "$(cat "$dir/node_modules/.installed")" = "$want" ]; then
      continue
    fi
    log "installing the npm packages of ${dir#"$ROOT/"}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$dir/node_modules/.installed"
  done
}

check_rust
install_apt_packages
ensure_venv
install_pip_packages
install_node
install_npm_packages
log "ok"
