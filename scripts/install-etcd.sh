#!/bin/sh
# Installs etcd (Debian's etcd-server) for the cluster tests, only when it is missing, and what the
# security tests use beside it: etcdctl (etcd-client, which scripts/etcd-roles.sh runs) and openssl
# (the tests make their certificates with it).
# Idempotent; needs root and apt. `ISINIT_ETCD=/path/to/etcd` points the tests at another binary.
set -eu

missing=""
command -v etcdctl >/dev/null 2>&1 || missing="$missing etcd-client"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ -n "${ISINIT_ETCD:-}" ] && [ -x "$ISINIT_ETCD" ]; then
  echo "etcd: using ISINIT_ETCD=$ISINIT_ETCD"
elif command -v etcd >/dev/null 2>&1; then
  echo "etcd: already installed: $(etcd --version | head -n 1)"
else
  missing="$missing etcd-server"
fi
if [ -z "$missing" ]; then
  exit 0
fi
# etcd-server enables a systemd unit; tests never use it (they start their own etcd on free ports).
# shellcheck disable=SC2086
sh "$(dirname "$0")/apt-install.sh" etcd $missing
for tool in etcdctl openssl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "etcd: $tool still missing after installing$missing" >&2; exit 1; }
done
if [ -z "${ISINIT_ETCD:-}" ]; then
  command -v etcd >/dev/null 2>&1 || { echo "etcd: etcd-server installed but no etcd binary on PATH" >&2; exit 1; }
fi
echo "etcd: installed$missing"
