#!/usr/bin/env bash
# Browser tests: every tests/browser/*.test.mjs in real headless Chromium
# (Debian's `chromium`, driven by playwright-core from npm) against a fresh
# berth holding images pushed by skopeo. Last line: "N passed, M failed".
#
#   BERTH_BIN=target/debug/berth tests/browser/run.sh [FILE.test.mjs...]
#
# Env: SCREENSHOT_DIR (default $T/screenshots, removed with $T unless
# KEEP_TMP is set), CI=true makes a missing chromium a failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../clients/lib.sh
source "$here/../clients/lib.sh"
# shellcheck source=seed.sh
source "$here/seed.sh"

CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ] && [ "$(id -u)" -eq 0 ]; then
  echo "# installing chromium (apt)"
  (export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium >/dev/null) || true
fi
if [ ! -x "$CHROMIUM" ]; then
  # Without CI a missing browser is a skip; in CI it is a failure.
  if [ "${CI:-}" = true ]; then FAILED=$((FAILED + 1)); echo "FAIL - $CHROMIUM missing (apt-get install chromium)"
  else echo "# SKIP browser tests: $CHROMIUM missing (apt-get install chromium)"; fi
  exit 0
fi

# playwright-core from the lockfile; downloads are cached outside the repo.
export npm_config_cache=${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/npm
if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >"$T/npm.log" 2>&1); then
  FAILED=$((FAILED + 1)); echo "FAIL - npm ci in tests/browser"; sed 's/^/    /' "$T/npm.log"; exit 1
fi

start_berth
# Not through `check`: that runs in a subshell and seed_registry's exports are needed here.
if seed_registry >"$T/seed.log" 2>&1; then
  PASSED=$((PASSED + 1)); echo "ok - seed: app v1/v2 with an SBOM referrer, a two-platform index, busybox (skopeo)"
else
  FAILED=$((FAILED + 1)); echo "FAIL - seed"; tail -n 40 "$T/seed.log" | sed 's/^/    /'; exit 1
fi

export BERTH_URL=http://$REG BERTH_BIN T
export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$T/screenshots}
mkdir -p "$SCREENSHOT_DIR"

if [ "$#" -gt 0 ]; then files=("$@"); else files=("$here"/*.test.mjs); fi
# One file at a time: two cores, and Chromium is the heaviest thing running.
rc=0
node --test --test-reporter=tap --test-concurrency=1 --test-timeout=120000 "${files[@]}" >"$T/node-test.tap" 2>&1 || rc=$?
cat "$T/node-test.tap"
p=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$T/node-test.tap" | tail -n 1)
f=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$T/node-test.tap" | tail -n 1)
if [ -z "$p" ] || [ -z "$f" ]; then
  FAILED=$((FAILED + 1)); echo "FAIL - node --test gave no summary (exit $rc)"
else
  PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then FAILED=$((FAILED + 1)); echo "FAIL - node --test exited $rc"; fi
fi
echo "# screenshots in $SCREENSHOT_DIR"
