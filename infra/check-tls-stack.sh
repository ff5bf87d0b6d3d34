#!/usr/bin/env bash
# Fails when the workspace builds more than one TLS stack: every crate that speaks TLS (the AWS
# SDK's HTTPS client, reqwest) must share one rustls on one crypto provider, aws-lc-rs. A
# default feature of aws-config or aws-sdk-* brings back rustls 0.21 on ring, one of reqwest's
# brings ring or native-tls; this names what came back. Reads Cargo.lock's resolution with
# `cargo tree` (every edge: normal, build and dev), builds nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

crates=$(cargo tree --workspace --edges normal,build,dev --prefix none --format '{p}' | awk '{print $1, $2}' | sort -u)
versions() { awk -v name="$1" '$1 == name {print $2}' <<<"$crates" | paste -sd ' ' -; }

failed=0
for name in rustls tokio-rustls hyper-rustls rustls-webpki aws-lc-rs; do
    found=$(versions "$name")
    if [[ $(wc -w <<<"$found") -ne 1 ]]; then
        echo "check-tls-stack: want one $name, found: ${found:-none}" >&2
        failed=1
    fi
done
for name in ring openssl native-tls boring; do
    found=$(versions "$name")
    if [[ -n "$found" ]]; then
        echo "check-tls-stack: a second crypto provider or TLS stack: $name $found (run: cargo tree -i $name)" >&2
        failed=1
    fi
done
[[ $failed -eq 0 ]] || exit 1
echo "check-tls-stack: one TLS stack, rustls $(versions rustls) on aws-lc-rs $(versions aws-lc-rs)"
