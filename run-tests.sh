#!/usr/bin/env bash
# Runs every check and test of the project on a fresh machine: installs what the build needs
# (libclang for the RocksDB bindings, a C++ compiler), then formatting, lints and the test suite
# (unit, golden, property, conformance, crash, integration and Python-client tests).
set -euo pipefail
cd "$(dirname "$0")"

need_pkgs=()
[ -n "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null | head -n1)" ] || need_pkgs+=(libclang-dev)
command -v g++ >/dev/null 2>&1 || need_pkgs+=(g++)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "==> installing system packages: ${need_pkgs[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
PROPTEST_CASES="${PROPTEST_CASES:-256}" cargo test --locked --no-fail-fast
