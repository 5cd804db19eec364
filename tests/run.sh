#!/usr/bin/env bash
# The project's test command: deps (clients; PostgreSQL and Garage for the
# S3 + PostgreSQL tests) → lints → one build (profile `ci`: release
# speed, overflow checks and debug assertions on) → cargo tests → fuzzing →
# real clients → browser → a 45 s soak → a 45 s soak with GC running.
# Last line: "N passed, M failed". Exits non-zero on any failure.
set -euo pipefail
if [ -n "${BERTH_BIN:-}" ]; then BERTH_BIN=$(realpath "$BERTH_BIN"); export BERTH_BIN; fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PROFILE=ci
# One build serves everything: the cargo tests, the real-client tests and the
# container image (deploy/build-image.sh builds this same static binary with
# BERTH_PROFILE=ci, so it finds it already built). --target keeps crt-static
# off build scripts and proc-macros, which cannot link statically.
TARGET=x86_64-unknown-linux-gnu
export BERTH_PROFILE=$PROFILE
static_cargo() { RUSTFLAGS="-Ctarget-feature=+crt-static" cargo "$@" --profile "$PROFILE" --target "$TARGET"; }

passed=0 failed=0
log=$(mktemp "${TMPDIR:-/tmp}/berth-tests-log.XXXXXX")
trap 'rm -f "$log"' EXIT

# Each step's wall time, for the summary: what to trim when the command
# nears CI's budget.
timings=() step_name="" step_started=$SECONDS
end_timing() { [ -z "$step_name" ] || timings+=("$(printf '%5ds  %s' $((SECONDS - step_started)) "$step_name")"); }
step() { end_timing; step_name=$*; step_started=$SECONDS; echo; echo "##### $*"; }
# fail_step NAME: a step that failed without counting itself.
fail_step() { failed=$((failed + 1)); echo "FAIL - $1"; }
# check_step NAME CMD...: a step that passes or fails as one.
check_step() {
  local name=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok - $name"; else fail_step "$name"; fi
}
# counted_step NAME CMD...: a step whose output ends with "N passed, M failed".
counted_step() {
  local name=$1 rc=0 last p=0 f=0; shift
  "$@" 2>&1 | tee "$log" || rc=$?
  last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
  if [ -n "$last" ]; then read -r p _ f _ <<<"${last//,/}"; fi
  passed=$((passed + p)) failed=$((failed + f))
  if [ -z "$last" ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then fail_step "$name exited $rc"; fi
}

# Garage, which replicas.sh and the S3 tests start, is built from crates.io
# once (~12 min on 2 cores) into ~/.cache/berth-tests/garage, outside the
# repository. That one-time build runs before the clock starts: it is not part
# of the test command's budget nor of any step's time (tests/deps.sh, timed
# below, finds it built).
if [ -f tests/engines/garage.sh ]; then
  echo "##### one-time engine build (untimed): Garage"
  bash tests/engines/garage.sh ensure || echo "Garage build failed; tests/deps.sh reports it" >&2
  SECONDS=0
fi

step "dependencies"
bash tests/deps.sh || fail_step "tests/deps.sh"

step "lints: rustfmt and clippy"
check_step "cargo fmt --check" cargo fmt --all --check
check_step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo build --profile $PROFILE --target $TARGET -p berth-cli (static)"
built=true
static_cargo build -p berth-cli || { built=false; fail_step "cargo build -p berth-cli"; }
if [ -z "${BERTH_BIN:-}" ]; then BERTH_BIN=$PWD/target/$TARGET/$PROFILE/berth; export BERTH_BIN; fi

step "cargo test --workspace --profile $PROFILE --target $TARGET"
rc=0
static_cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || rc=$?
# "test result: ok. 12 passed; 0 failed; 0 ignored; ..."
read -r cargo_passed cargo_failed < <(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed;.*/\1 \2/p' "$log" |
  awk '{p += $1; f += $2} END {print p + 0, f + 0}')
passed=$((passed + cargo_passed)) failed=$((failed + cargo_failed))
if [ "$rc" -ne 0 ] && [ "$cargo_failed" -eq 0 ]; then fail_step "cargo test exited $rc"; fi
echo "cargo test: $cargo_passed passed, $cargo_failed failed"

# A subset of the conformance suite again with every server on S3 (Garage) +
# PostgreSQL: the areas whose storage differs (uploads, manifests, tags,
# referrers, catalog, deletes). The whole suite twice would cost minutes.
# (conformance::replicas, two servers on one bucket and database, runs above.)
step "conformance on S3 + PostgreSQL (pull, blob_upload, manifest_push, discovery, delete)"
rc=0
# (static_cargo's own flags would land after `--`: spelled out here.
# --workspace, not -p berth-cli: the features of the build above, so
# nothing is compiled again.)
BERTH_CONFORMANCE_BACKEND=s3pg RUSTFLAGS="-Ctarget-feature=+crt-static" cargo test --workspace \
  --test conformance --no-fail-fast --profile "$PROFILE" --target "$TARGET" -- \
  pull:: blob_upload:: manifest_push:: discovery:: delete:: 2>&1 | tee "$log" || rc=$?
read -r s3pg_passed s3pg_failed < <(sed -nE 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed;.*/\1 \2/p' "$log" |
  awk '{p += $1; f += $2} END {print p + 0, f + 0}')
passed=$((passed + s3pg_passed)) failed=$((failed + s3pg_failed))
if [ "$rc" -ne 0 ] && [ "$s3pg_failed" -eq 0 ]; then fail_step "conformance on S3 + PostgreSQL exited $rc"; fi

step "fuzzing: corpus replay, then ${FUZZ_SECONDS:-6} s per target (fuzz/run.sh --quick)"
counted_step "fuzz/run.sh" bash fuzz/run.sh --quick "${FUZZ_SECONDS:-6}"

step "real clients (tests/clients/run.sh)"
if [ "$built" = true ] && [ -x "$BERTH_BIN" ]; then
  counted_step "tests/clients/run.sh" bash tests/clients/run.sh
else
  fail_step "client tests not run: no berth binary"
fi

step "browser (tests/browser/run.sh)"
if [ "$built" = true ] && [ -x "$BERTH_BIN" ]; then
  counted_step "tests/browser/run.sh" bash tests/browser/run.sh
else
  fail_step "browser tests not run: no berth binary"
fi

step "soak (bench/soak.sh --duration 45 --clients 500)"
if [ "$built" = true ] && [ -x "$BERTH_BIN" ]; then
  counted_step "bench/soak.sh" bash bench/soak.sh --duration 45 --clients 500
else
  fail_step "soak not run: no berth binary"
fi

# ~1.5 min: 60 s of load, the settle past the grace, the final GC passes, fsck.
step "GC soak (bench/soak.sh --gc --duration 45)"
if [ "$built" = true ] && [ -x "$BERTH_BIN" ]; then
  counted_step "bench/soak.sh --gc" bash bench/soak.sh --gc --duration 45
else
  fail_step "GC soak not run: no berth binary"
fi

end_timing
step_name=""
step "summary (${SECONDS}s)"
printf '%s\n' "${timings[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
