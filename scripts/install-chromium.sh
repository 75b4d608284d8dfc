#!/bin/sh
# Installs a browser for the status page's browser tests (test/web/browser.test.ts): Debian's
# chromium, only when it is missing. playwright-core drives it; nothing downloads a browser of its
# own. Idempotent; needs root and apt. `ISINIT_CHROMIUM=/path/to/chromium` points the tests at
# another binary.
set -eu

if [ -n "${ISINIT_CHROMIUM:-}" ] && [ -x "$ISINIT_CHROMIUM" ]; then
  echo "chromium: using ISINIT_CHROMIUM=$ISINIT_CHROMIUM"
  exit 0
fi
if command -v chromium >/dev/null 2>&1; then
  echo "chromium: already installed"
  exit 0
fi
sh "$(dirname "$0")/apt-install.sh" chromium chromium
command -v chromium >/dev/null 2>&1 || { echo "chromium: installed, but no chromium on PATH" >&2; exit 1; }
echo "chromium: installed"
