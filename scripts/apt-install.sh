#!/bin/sh
# Installs Debian packages the tests need, with apt, as root (the install-*.sh scripts call it):
# `sh scripts/apt-install.sh NAME PACKAGE...`, NAME saying what for in its messages. Without root
# it says the command to run, and fails.
set -eu

name=$1
shift
if [ "$(id -u)" -ne 0 ]; then
  echo "$name: missing $* and not root; run: sudo apt-get install -y $*" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
