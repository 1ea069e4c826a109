#!/usr/bin/env bash
# Builds Cairn and runs its main job on the quickstart example: create the `dev` stack if it
# does not exist yet, then `cairn up --yes`. State goes to the default backend (file://~/.cairn,
# or $CAIRN_HOME). Run it again to see a no-op update.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin cairn
cairn=target/release/cairn
example=examples/quickstart
# The demo's secrets (the random password) need a passphrase; pick your own in real use.
export CAIRN_CONFIG_PASSPHRASE="${CAIRN_CONFIG_PASSPHRASE:-quickstart-demo}"
if ! "$cairn" stack select dev --cwd "$example" 2>/dev/null; then
  "$cairn" stack init dev --cwd "$example"
fi
"$cairn" up --yes --cwd "$example"
"$cairn" stack output --cwd "$example"
