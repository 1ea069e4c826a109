#!/usr/bin/env bash
# Makes sure Debian's busybox-static is installed: the compute tests build their container
# images from its one static binary (FROM scratch), as no image can be pulled from a registry.
set -euo pipefail
if [ -x /bin/busybox ]; then
  exit 0
fi
echo "busybox-static is not installed: installing it from Debian's packages" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y busybox-static
test -x /bin/busybox
