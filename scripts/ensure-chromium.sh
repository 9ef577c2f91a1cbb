#!/usr/bin/env bash
# Makes sure Debian's chromium is installed for the browser tests (tests/browser): installs the
# `chromium` package with apt-get when /usr/bin/chromium (or $HUB_CHROMIUM) is missing. Needs root
# (or sudo) and the Debian package mirror; prints which step failed. Exit status 0: the browser runs.
#   ./scripts/ensure-chromium.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
strict_mode

CHROMIUM="${HUB_CHROMIUM:-/usr/bin/chromium}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
    fail "installing chromium needs root (or passwordless sudo) to run: $*"
    return 1
  fi
}

install_chromium() {
  step "installing Debian's chromium (apt-get)"
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "apt-get not found: install a chromium browser and set HUB_CHROMIUM to its path"
    return 1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

check_chromium() {
  step "checking $CHROMIUM"
  local version
  version="$("$CHROMIUM" --headless=new --no-sandbox --disable-gpu --version 2>/dev/null || true)"
  if [ -z "$version" ]; then
    fail "$CHROMIUM is installed but does not start (see: $CHROMIUM --headless --no-sandbox --version)"
    return 1
  fi
  log "browser ready: $version"
}

if [ ! -x "$CHROMIUM" ]; then install_chromium; fi
if [ ! -x "$CHROMIUM" ]; then
  fail "apt-get finished but $CHROMIUM is still missing"
  exit 1
fi
check_chromium
