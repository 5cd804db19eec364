#!/usr/bin/env bash
# Bounded soak: N concurrent loopback clients mixing pushes, pulls, listings,
# mounts and deletes against a fresh berth; checks every answer, verifies every
# pulled blob, samples berth's memory, prints the figures and a verdict.
#   bench/soak.sh                                # on demand: 300 s, 500 clients
#   bench/soak.sh --duration 45 --clients 500    # the CI variant
#   bench/soak.sh --gc                           # with GC: 300 s (CI: --duration 45)
#   bench/soak.sh --gc --duration 3600           # the hour on demand
# Other flags go to `loadgen soak`: --pool 1GiB (distinct blob bytes, bounds
# disk use), --timeout 60s, --warmup 12s, --rss-ceiling-mib 1024,
# --json-out FILE; with --gc to `loadgen gc-soak`: --pushers 8 --pullers 8
# --deleters 2 --retained 2 --gc-every 5s --pool 256MiB --json-out FILE.
# --gc: berth runs with [gc] grace 3s, interval 2s, untagged_after 5s and a
# [[retention]] rule (soak/retained/*, keep_last 2); pushers HEAD-then-skip
# like docker, pullers verify every byte, deleters remove manifests and tags,
# `berth gc` runs beside the server's worker. Afterwards, with the load
# stopped: two `berth gc` passes past the grace, the end state over HTTP,
# then berth stopped, `berth fsck` clean and the blob files exactly the
# referenced set (bench/gc_store_check.py).
# Environment:
#   BERTH_BIN=/path/berth     use this binary, do not build berth
#   BENCH_TARGET_DIR=dir      cargo target dir for the loadgen (default bench/target)
#   BERTH_SOAK_LOG=filter     BERTH_LOG given to berth (default: berth's own, info)
#   BERTH_SOAK_NOFILE=n       soft open-file limit berth starts with (default: this shell's)
# Exit status: 0 when every check passed, 1 when one failed, 2 when the soak
# could not run.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$bench_dir")"

duration=300
clients=500
gc=""
extra=()
while (($#)); do
  case "$1" in
    --gc) gc=1; shift ;;
    --duration) duration="$2"; shift 2 ;;
    --duration=*) duration="${1#*=}"; shift ;;
    --clients) clients="$2"; shift 2 ;;
    --clients=*) clients="${1#*=}"; shift ;;
    *) extra+=("$1"); shift ;;
  esac
done

duration="${duration%s}" # 60 and 60s both mean a minute
if ! [[ "$duration" =~ ^[0-9]+$ && "$clients" =~ ^[0-9]+$ ]]; then
  echo "usage: bench/soak.sh [--gc] [--duration SECONDS] [--clients N] [loadgen soak flags]" >&2
  exit 2
fi

# 1. Binaries: berth (release) unless BERTH_BIN is given, and the loadgen.
berth_bin="${BERTH_BIN:-}"
if [[ -z "$berth_bin" ]]; then
  echo "[soak] building berth (cargo build --release -p berth-cli)" >&2
  (cd "$root" && cargo build --release --quiet -p berth-cli >&2)
  berth_bin="${CARGO_TARGET_DIR:-$root/target}/release/berth"
fi
lg_target="${BENCH_TARGET_DIR:-$bench_dir/target}"
echo "[soak] building loadgen" >&2
CARGO_TARGET_DIR="$lg_target" cargo build --release --quiet --manifest-path "$bench_dir/Cargo.toml" >&2
loadgen="$lg_target/release/loadgen"

# 2. berth on a free loopback port with a temporary data dir; stopped by its
# PID and the directory removed on any exit.
work="$(mktemp -d "${TMPDIR:-/tmp}/berth-soak.XXXXXX")"
pid=""
stop_berth() {
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[soak] berth did not exit within 10 s of SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  pid=""
}
cleanup() {
  stop_berth
  if [[ -n "${BERTH_SOAK_KEEP:-}" ]]; then echo "[soak] kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --gc: the collector at a grace of seconds, and one retention rule.
serve_config=()
has_gc_cli=""
if [[ -n "$gc" ]]; then
  # A berth without `berth gc` has no [gc] keys either: run the load with
  # what exists (the collector's checks then fail and say so).
  if "$berth_bin" gc --help >/dev/null 2>&1; then
    has_gc_cli=1
    printf '[gc]\ngrace = "3s"\ninterval = "2s"\nuntagged_after = "5s"\n\n' >"$work/berth.toml"
  else
    echo "[soak] warning: this berth has no 'berth gc' (nor [gc] settings): no collector runs" >&2
    : >"$work/berth.toml"
  fi
  cat >>"$work/berth.toml" <<'TOML'
[[retention]]
repositories = "soak/retained/*"
keep_last = 2
TOML
  serve_config=(--config "$work/berth.toml")
fi

nofile="${BERTH_SOAK_NOFILE:-$(ulimit -Sn)}"
# A connection can hold a socket, a blob being sent and an upload being
# written: warn when berth cannot have that many descriptors for every client.
hard="$(ulimit -Hn)"
if [[ "$hard" != unlimited ]] && ((hard < 2 * clients + 64)); then
  echo "[soak] warning: hard open-file limit $hard < 2 x $clients clients + 64; berth may refuse connections or fail requests" >&2
fi
for attempt in 1 2 3; do
  port="$(free_port)"
  rm -rf "$work/data"
  (
    ulimit -Sn "$nofile"
    [[ -n "${BERTH_SOAK_LOG:-}" ]] && export BERTH_LOG="$BERTH_SOAK_LOG"
    # Every soak client comes from 127.0.0.1, which berth's per-client upload
    # cap counts as one client: give that one address room for all of them.
    export BERTH_MAX_UPLOAD_SESSIONS_PER_CLIENT="${BERTH_MAX_UPLOAD_SESSIONS_PER_CLIENT:-$((4 * clients))}"
    exec "$berth_bin" serve ${serve_config[@]+"${serve_config[@]}"} --addr "127.0.0.1:$port" --data-dir "$work/data"
  ) >"$work/berth.log" 2>&1 &
  pid=$!
  sleep 0.3
  kill -0 "$pid" 2>/dev/null && break
  echo "[soak] berth exited at start (attempt $attempt):" >&2
  tail -5 "$work/berth.log" >&2
  wait "$pid" 2>/dev/null || true
  pid=""
done
[[ -n "$pid" ]] || exit 2
echo "[soak] berth pid $pid on 127.0.0.1:$port, open-file limit $(awk '/Max open files/ {print $4 " soft, " $5 " hard"}' "/proc/$pid/limits")" >&2

# 3. The load. The loadgen needs a descriptor per client, so it gets the
# hard limit; berth keeps what it was started with.
status=0
if [[ -n "$gc" ]]; then
  explicit=()
  [[ -n "$has_gc_cli" ]] && explicit=(--berth "$berth_bin" --data-dir "$work/data" --config "$work/berth.toml")
  (
    exec "$loadgen" gc-soak --url "http://127.0.0.1:$port" --duration "${duration}s" --grace 3s --untagged-after 5s \
      --keep-last 2 ${explicit[@]+"${explicit[@]}"} \
      --server-pid "$pid" --server-log "$work/berth.log" ${extra[@]+"${extra[@]}"}
  ) | tee "$work/soak.out" || status=$?
else
  (
    ulimit -Sn "$(ulimit -Hn)"
    exec "$loadgen" soak --url "http://127.0.0.1:$port" --clients "$clients" --duration "${duration}s" \
      --server-pid "$pid" --server-log "$work/berth.log" ${extra[@]+"${extra[@]}"}
  ) | tee "$work/soak.out" || status=$?
fi

echo "berth data dir at end: $(du -sm "$work/data" | cut -f1) MiB, $(find "$work/data" -type f | wc -l) files"
if [[ -d /proc/$pid ]]; then
  echo "berth open-file limit at end: $(awk '/Max open files/ {print $4}' "/proc/$pid/limits")"
fi
stop_berth
# The verdict's count is the last line; a soak that could not run is one failure.
verdict="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/soak.out" | tail -n 1 || true)"
verdict="${verdict:-0 passed, 1 failed}"
if [[ -n "$gc" ]]; then
  # 4. Offline, berth stopped: fsck clean, and the blob files exactly the referenced set.
  read -r passed _ failed _ <<<"${verdict//,/}"
  echo "[soak] berth fsck --data-dir $work/data" >&2
  if "$berth_bin" fsck --data-dir "$work/data" 2>&1 | tee "$work/fsck.out"; then
    echo "PASS berth fsck clean"; passed=$((passed + 1))
  else
    echo "FAIL berth fsck clean"; failed=$((failed + 1)); status=1
  fi
  store_rc=0
  python3 "$bench_dir/gc_store_check.py" "$work/data" | tee "$work/store.out" || store_rc=$?
  store="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$work/store.out" | tail -n 1 || true)"
  if [[ -n "$store" ]]; then
    read -r p _ f _ <<<"${store//,/}"
    passed=$((passed + p)) failed=$((failed + f))
  else
    failed=$((failed + 1))
  fi
  ((store_rc == 0)) || status=1
  verdict="$passed passed, $failed failed"
fi
echo "$verdict"
exit "$status"
