#!/usr/bin/env bash
# berth benchmark: one command on a fresh Debian machine.
#   bench/run.sh                      # full run, berth and distribution (~10-15 min)
#   bench/run.sh --quick              # smoke run: 1 repetition, small counts
#   bench/run.sh --only distribution  # one registry only (also: --only berth)
#   bench/run.sh --auth               # auth rows: manifest GET + 1 MiB push, with and without logins
#   bench/run.sh --gc [--quick]       # GC rows: push and pull with the collector off / every second
#   bench/run.sh --pull-through [--quick]  # pull-through cache rows: direct vs through berth, cached and cold
#   bench/run.sh --s3 [--quick]       # S3 + PostgreSQL rows: both registries on Garage too, and two berth replicas
#   bench/run.sh --out /path/x.json   # JSON results (default bench/results/latest.json)
# Environment:
#   BERTH_BIN=/path/berth       use this binary, do not build berth
#   BENCH_TARGET_DIR=dir        cargo target dir for the loadgen (default bench/target)
#   BERTH_BENCH_LOG=filter      BERTH_LOG given to berth (default: berth's own, info)
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$bench_dir")"

# berth is built unless every --only names distribution (the auth targets
# need it too: berth user add writes the htpasswd file distribution reads).
only=()
prev=""
for a in "$@"; do
  [[ "$prev" == "--only" ]] && only+=("$a")
  [[ "$a" == --only=* ]] && only+=("${a#--only=}")
  prev="$a"
done
need_berth=1
if ((${#only[@]})); then
  need_berth=""
  for o in "${only[@]}"; do [[ "$o" != distribution && "$o" != distribution-s3 ]] && need_berth=1; done
fi

# 1. Debian packages: CNCF distribution 2.8 and iperf3.
missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v iperf3 >/dev/null || missing+=(iperf3)
if ((${#missing[@]})); then
  echo "[bench] installing ${missing[*]}" >&2
  apt-get update -qq
  # Do not let the packages start their own daemons (docker-registry on :5000).
  policy=/usr/sbin/policy-rc.d
  created_policy=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  [[ -n "$created_policy" ]] && rm -f "$policy"
fi

# 2. berth (release), unless only distribution runs or BERTH_BIN is given.
berth_bin="${BERTH_BIN:-}"
if [[ -n "$need_berth" && -z "$berth_bin" ]]; then
  echo "[bench] building berth (cargo build --release -p berth-cli)" >&2
  (cd "$root" && cargo build --release -p berth-cli >&2)
  berth_bin="${CARGO_TARGET_DIR:-$root/target}/release/berth"
fi

# 3. loadgen (release), in its own workspace and target dir.
lg_target="${BENCH_TARGET_DIR:-$bench_dir/target}"
echo "[bench] building loadgen" >&2
CARGO_TARGET_DIR="$lg_target" cargo build --release --quiet --manifest-path "$bench_dir/Cargo.toml" >&2

# 4. Run. Python owns the servers it starts and stops them by PID on exit.
# The command as typed, for the report's header.
export BENCH_COMMAND="bench/run.sh${*:+ $*}"
args=(--loadgen "$lg_target/release/loadgen")
[[ -n "$berth_bin" ]] && args+=(--berth "$berth_bin")
exec python3 "$bench_dir/bench.py" "${args[@]}" "$@"
