#!/usr/bin/env bash
# Benchmarks the release `cairn` binary on generated programs of fake resources and prints a
# table and JSON. `./scripts/bench.sh --quick` runs a small version.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/time ]; then
  apt-get update && apt-get install -y time
fi
cargo build --release --bin cairn --bin cairn-bench
target/release/cairn-bench target/release/cairn "$@"
