#!/usr/bin/env bash
# Installs headless Chromium (Debian's chromium package) for the dashboard's browser tests when it is missing.
# Without a way to install it the tests skip — except in CI (CI=true), where this fails loudly.
set -euo pipefail

for b in "${SUPPORTSTACK_CHROMIUM_BIN:-}" chromium chromium-browser google-chrome; do
  if [[ -n "$b" ]] && command -v "$b" >/dev/null 2>&1; then
    exit 0
  fi
done

fail() {
  echo "install-chromium: $*" >&2
  if [[ "${CI:-}" == "true" ]]; then
    exit 1
  fi
  echo "install-chromium: the browser tests will be skipped" >&2
  exit 0
}

command -v apt-get >/dev/null 2>&1 || fail "no chromium and no apt-get to install it with: install Chromium or set SUPPORTSTACK_CHROMIUM_BIN"
sudo=""
if [[ "$(id -u)" != 0 ]]; then
  sudo -n true 2>/dev/null || fail "installing chromium needs root (or password-less sudo): run 'sudo apt-get install chromium'"
  sudo="sudo -n"
fi
echo "install-chromium: installing Debian's chromium package for the browser tests"
$sudo apt-get update -qq || fail "apt-get update failed"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null || fail "apt-get install chromium failed"
