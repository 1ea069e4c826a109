#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl) are installed, from Debian's
# packages, for the tests that start a throwaway cluster. Quiet and quick when they are.
set -euo pipefail

have_postgres() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1
}

if have_postgres; then
  exit 0
fi
echo "PostgreSQL is not installed: installing it from Debian's packages" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y postgresql
# Debian starts a cluster of its own; the tests start theirs, so it is not needed.
$SUDO service postgresql stop >/dev/null 2>&1 || true
have_postgres
