#!/usr/bin/env bash
# The project's test command: deps → release build → cargo tests → fuzzing → real-client tests.
# Last line: "N passed, M failed" (cargo test counts + fuzz targets + client checks). Exits non-zero on any failure.
set -euo pipefail
if [ -n "${BERTH_BIN:-}" ]; then BERTH_BIN=$(realpath "$BERTH_BIN"); export BERTH_BIN; fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

passed=0 failed=0
log=$(mktemp "${TMPDIR:-/tmp}/berth-tests-log.XXXXXX")
trap 'rm -f "$log"' EXIT

step() { echo; echo "##### $*"; }
# fail_step NAME: a step that failed without counting itself.
fail_step() { failed=$((failed + 1)); echo "FAIL - $1"; }

step "dependencies"
bash tests/deps.sh || fail_step "tests/deps.sh"

step "cargo build --release -p berth-cli"
built=true
cargo build --release -p berth-cli || { built=false; fail_step "cargo build --release -p berth-cli"; }

step "cargo test --workspace --release"
rc=0
cargo test --workspace --release --no-fail-fast 2>&1 | tee "$log" || rc=$?
# "test result: ok. 12 passed; 0 failed; 0 ignored; ..."
read -r cargo_passed cargo_failed < <(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed;.*/\1 \2/p' "$log" |
  awk '{p += $1; f += $2} END {print p + 0, f + 0}')
passed=$((passed + cargo_passed)) failed=$((failed + cargo_failed))
if [ "$rc" -ne 0 ] && [ "$cargo_failed" -eq 0 ]; then fail_step "cargo test exited $rc"; fi
echo "cargo test: $cargo_passed passed, $cargo_failed failed"

step "fuzzing: corpus replay, then ${FUZZ_SECONDS:-10} s per target (fuzz/run.sh)"
rc=0
bash fuzz/run.sh "${FUZZ_SECONDS:-10}" 2>&1 | tee "$log" || rc=$?
last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
p=0 f=0
if [ -n "$last" ]; then read -r p _ f _ <<<"${last//,/}"; fi
passed=$((passed + p)) failed=$((failed + f))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail_step "fuzz/run.sh exited $rc"; fi

step "real clients (tests/clients/run.sh)"
if [ "$built" = true ] || [ -n "${BERTH_BIN:-}" ]; then
  rc=0
  bash tests/clients/run.sh 2>&1 | tee "$log" || rc=$?
  last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
  p=0 f=0
  if [ -n "$last" ]; then read -r p _ f _ <<<"${last//,/}"; fi
  passed=$((passed + p)) failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then fail_step "tests/clients/run.sh exited $rc"; fi
else
  fail_step "client tests not run: no berth binary"
fi

step "summary"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
