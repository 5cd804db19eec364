#!/usr/bin/env bash
# Replays the committed corpus of every fuzz target, then fuzzes each for a
# bounded time. Exits non-zero if any target fails; the last line is
# "N passed, M failed" (targets).
#
#   fuzz/run.sh [--quick] [SECONDS_PER_TARGET]     (default 20; 0 only replays)
#
# --quick builds the targets unoptimised and without AddressSanitizer: about
# a third of the build time, for the short bounded run the test command
# makes. Fuzzing on demand leaves it off (release build, ASan).
#
# Needs the nightly toolchain; installs cargo-fuzz from crates.io if missing.
# New inputs a run finds go to fuzz/scratch/<target>/ (ignored by git); the
# committed corpus in fuzz/corpus/<target>/ is only read. A crash leaves its
# input in fuzz/artifacts/<target>/: add it to the corpus with the fix.
set -uo pipefail
cd "$(dirname "$0")"

build=()
if [ "${1:-}" = --quick ]; then
    build=(--dev --sanitizer none)
    shift
fi
seconds=${1:-20}
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi
fuzz=(cargo +nightly fuzz)
if ! "${fuzz[@]}" --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked || { echo "0 passed, 1 failed"; exit 1; }
fi

targets=$("${fuzz[@]}" list) || { echo "0 passed, 1 failed"; exit 1; }
if ! "${fuzz[@]}" build "${build[@]}"; then
    echo "FAIL: the fuzz targets do not build"
    echo "0 passed, $(wc -w <<<"$targets") failed"
    exit 1
fi

passed=0
failed=0
for target in $targets; do
    mkdir -p "corpus/$target" "scratch/$target"
    log="scratch/$target.log"
    # Inputs given as files are each run once: the replay of the corpus.
    seeds=("corpus/$target"/*)
    if [[ -e ${seeds[0]} ]] && ! "${fuzz[@]}" run "${build[@]}" "$target" "${seeds[@]}" -- -timeout=10 >"$log" 2>&1; then
        echo "FAIL $target: a committed corpus input fails (fuzz/$log)"
        tail -n 30 "$log"
        failed=$((failed + 1))
        continue
    fi
    if ((seconds > 0)) && ! "${fuzz[@]}" run "${build[@]}" "$target" "scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >>"$log" 2>&1; then
        echo "FAIL $target: crashed while fuzzing (fuzz/$log, fuzz/artifacts/$target/)"
        tail -n 30 "$log"
        failed=$((failed + 1))
        continue
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    echo "ok   $target (${runs:+$runs inputs after }the corpus replay)"
    passed=$((passed + 1))
done
echo "$passed passed, $failed failed"
((failed == 0))
