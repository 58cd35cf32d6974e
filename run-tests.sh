#!/usr/bin/env bash
# Runs every check and test of the project on a fresh machine: installs what the build and the
# tests need (scripts/setup-deps.sh: libclang for the RocksDB bindings, a C++ compiler,
# python3-venv, PostgreSQL), then formatting, lints and the test suite (unit, golden, property,
# conformance, crash, integration and Python-client tests).
set -euo pipefail
cd "$(dirname "$0")"

scripts/setup-deps.sh test

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "==> cargo test"
PROPTEST_CASES="${PROPTEST_CASES:-256}" cargo test --locked --no-fail-fast
