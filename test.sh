#!/usr/bin/env bash
# Runs Cairn's whole test suite on a fresh machine: installs what the tests need, checks
# formatting and lints, then runs every test (cargo-nextest when present, else cargo test).
set -euo pipefail
cd "$(dirname "$0")"

# Tests for the engine, programs, providers and the file backend need only Rust and a POSIX
# shell (the `command` provider runs /bin/sh). The postgres backend's tests start their own
# PostgreSQL cluster from Debian's packages, installed here when absent.
./scripts/ensure-postgres.sh
# The compute tests run containers on the local Docker Engine, from an image they build out of
# Debian's static busybox (no registry is reachable).
./scripts/ensure-busybox.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
