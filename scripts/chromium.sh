#!/usr/bin/env bash
# Installs Debian's Chromium for the console's browser test (test/console/browser.test.ts), if it
# is missing, and prints its path. Playwright drives it through playwright-core, which never
# downloads a browser of its own (this machine kind reaches only npm and Debian's packages).
#   bash scripts/chromium.sh          # install if missing; print the executable's path
#   MC_CHROMIUM=/path/to/chrome       # use another Chromium build instead (nothing is installed)
set -euo pipefail

if [ -n "${MC_CHROMIUM:-}" ]; then echo "$MC_CHROMIUM"; exit 0; fi
if ! command -v chromium >/dev/null; then
  echo "chromium: installing Debian's chromium package" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi
command -v chromium
