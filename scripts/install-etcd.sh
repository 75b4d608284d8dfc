#!/bin/sh
# Installs etcd (Debian's etcd-server) for the cluster tests, only when it is missing.
# Idempotent; needs root and apt. `ISINIT_ETCD=/path/to/etcd` points the tests at another binary.
set -eu

if [ -n "${ISINIT_ETCD:-}" ] && [ -x "$ISINIT_ETCD" ]; then
  echo "etcd: using ISINIT_ETCD=$ISINIT_ETCD"
  exit 0
fi
if command -v etcd >/dev/null 2>&1; then
  echo "etcd: already installed: $(etcd --version | head -n 1)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "etcd: not installed and not root; run: sudo apt-get install -y etcd-server" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package enables a systemd unit; tests never use it (they start their own etcd on free ports).
apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
command -v etcd >/dev/null 2>&1 || { echo "etcd: etcd-server installed but no etcd binary on PATH" >&2; exit 1; }
echo "etcd: installed $(etcd --version | head -n 1)"
