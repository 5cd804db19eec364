#!/usr/bin/env bash
# UI bench rows (on demand; not timed tests): berth with many repositories,
# then medians of
#   - time to first byte of /ui/ and /api/v1/repositories?n=100 (curl
#     %{time_starttransfer}; /v2/_catalog?n=100 beside them as the baseline),
#   - time to a painted /ui/ in Chromium (first-contentful-paint, fresh
#     context per round: no cache),
#   - a layer's file listing for a 64 MiB layer (first request: read and
#     decompressed from the blob; then from the cache by digest).
#
#   BERTH_BIN=target/release/berth bench/ui.sh [--repos N] [--rounds N] [--quick]
#
# --quick: 1,000 repositories, 5 rounds, an 8 MiB layer. Uses the bench
# loadgen (built into bench/target if missing) to seed, tests/clients/lib.sh
# to run berth, skopeo to push the big layer and tests/browser's
# playwright-core + Debian chromium to paint. Last line: "N passed, M failed"
# (the sanity checks: every endpoint answered 200), figures above it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
REPOS=10000 ROUNDS=30 LAYER_MIB=64
while [ "$#" -gt 0 ]; do
  case $1 in
    --repos) REPOS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --quick) REPOS=1000 ROUNDS=5 LAYER_MIB=8; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
# The endpoints measured (the layer listing's takes REPO and DIGEST).
UI_PATH=${UI_PATH:-/ui/}
API_PATH=${API_PATH:-/api/v1/repositories?n=100}
LAYER_FILES_PATH=${LAYER_FILES_PATH:-/api/v1/repositories/REPO/blobs/DIGEST/files}

BERTH_BIN=${BERTH_BIN:-$root/target/release/berth}
# shellcheck source=../tests/clients/lib.sh
source "$root/tests/clients/lib.sh"

LOADGEN=${LOADGEN:-${BENCH_TARGET_DIR:-$here/target}/release/loadgen}
if [ ! -x "$LOADGEN" ]; then
  echo "# building the loadgen" >&2
  CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-$here/target} cargo build --release --quiet --manifest-path "$here/Cargo.toml" >&2
fi
export npm_config_cache=${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/npm
(cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error >"$T/npm.log" 2>&1) ||
  { echo "npm ci in tests/browser failed:" >&2; cat "$T/npm.log" >&2; exit 1; }

# median_ms: the median of the seconds on stdin, one a line, in ms.
median_ms() { sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f\n", m * 1000}'; }

# ttfb PATH: ROUNDS requests on one connection each; the median TTFB in ms.
ttfb() {
  local i out code secs
  for i in $(seq "$ROUNDS"); do
    out=$(curl -s -o /dev/null -w '%{http_code} %{time_starttransfer}' "http://$REG$1")
    read -r code secs <<<"$out"
    [ "$code" = 200 ] || { echo "GET $1: status $code" >&2; return 1; }
    echo "$secs"
  done | median_ms
}

# big_layer_tar OUT MIB: a tar of 16 KiB files of random bytes (incompressible,
# so the gzip layer is MIB too), deterministic.
big_layer_tar() {
  python3 - "$1" "$2" <<'PY'
import io, random, sys, tarfile
out, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(64)
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
    for i in range(mib * 64):
        data = rng.randbytes(16384)
        info = tarfile.TarInfo(f"data/{i // 256:03d}/file-{i:05d}.bin")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
PY
}

declare -A ROW
# record NAME CMD...: like lib.sh's check, but CMD runs in this shell (it
# sets ROW); its last output line goes on the "ok" line.
record() {
  local name=$1; shift
  if "$@" >"$T/step.out" 2>&1; then
    PASSED=$((PASSED + 1)); echo "ok - $name: $(tail -n 1 "$T/step.out")"
  else
    FAILED=$((FAILED + 1)); echo "FAIL - $name"; tail -n 20 "$T/step.out" | sed 's/^/    /'
  fi
}

start_berth
echo "# berth: $("$BERTH_BIN" --version 2>/dev/null || echo "$BERTH_BIN")"

seeded() {
  local out
  out=$("$LOADGEN" seed-repos --url "http://$REG" "$REPOS" --streams 16) && echo "$out" &&
    [ "$(curl -s "http://$REG/v2/_catalog?n=$((REPOS + 10))" | jq '.repositories | length')" -ge "$REPOS" ]
}
record "seed $REPOS repositories (loadgen seed-repos, 16 streams)" seeded

measure() {  # measure KEY PATH
  local ms
  ms=$(ttfb "$2") && ROW[$1]=$ms && echo "$1: $ms ms"
}
record "TTFB /v2/_catalog?n=100 (baseline)" measure catalog "/v2/_catalog?n=100"
record "TTFB $UI_PATH" measure ui "$UI_PATH"
record "TTFB $API_PATH" measure api "$API_PATH"
paint() {
  local out
  out=$(node "$here/ui-paint.mjs" "http://$REG$UI_PATH" "$ROUNDS") && echo "$out" &&
    ROW[fcp]=$(jq -r '.fcp_ms' <<<"$out") && ROW[nav_ttfb]=$(jq -r '.ttfb_ms' <<<"$out")
}
record "paint $UI_PATH in Chromium" paint

push_big_layer() {
  local layout=$T/layouts/big m
  mkdir -p "$layout"
  big_layer_tar "$T/big.tar" "$LAYER_MIB" &&
    read -r -a m <<<"$(oci_image "$layout" "$HOST_ARCH" "$T/big.tar")" &&
    oci_ref "$layout" v1 "$OCI_MANIFEST" "${m[0]}" "${m[1]}" &&
    skopeo_ copy --dest-tls-verify=false "oci:$layout:v1" "docker://$REG/bench/big-layer:v1" >/dev/null &&
    manifest_body bench/big-layer v1 | layer_digests >"$T/big.digest"
}
record "push a $LAYER_MIB MiB layer with skopeo" push_big_layer
[ -s "$T/big.digest" ] || exit 1
LAYER_DIGEST=$(cat "$T/big.digest")
LAYER_URL=${LAYER_FILES_PATH//REPO/bench\/big-layer}
LAYER_URL=${LAYER_URL//DIGEST/$LAYER_DIGEST}
first=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "http://$REG$LAYER_URL")
read -r code secs <<<"$first"
if [ "$code" = 200 ]; then
  ROW[layer_first]=$(echo "$secs" | median_ms)
  PASSED=$((PASSED + 1)); echo "ok - layer listing of $LAYER_MIB MiB, first (uncached): ${ROW[layer_first]} ms"
  record "layer listing, cached" measure layer_cached "$LAYER_URL"
else
  FAILED=$((FAILED + 1)); echo "FAIL - layer listing $LAYER_URL: status $code"
fi

rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$BERTH_PID/status")
cat <<TABLE

| UI row, $REPOS repositories (median of $ROUNDS) | berth |
|---|---:|
| TTFB \`/v2/_catalog?n=100\` (baseline) (ms) | ${ROW[catalog]:-—} |
| TTFB \`$UI_PATH\` (ms) | ${ROW[ui]:-—} |
| TTFB \`$API_PATH\` (ms) | ${ROW[api]:-—} |
| \`$UI_PATH\` first-contentful-paint in Chromium (ms) | ${ROW[fcp]:-—} |
| \`$UI_PATH\` navigation TTFB in Chromium (ms) | ${ROW[nav_ttfb]:-—} |
| file listing of a $LAYER_MIB MiB gzip layer, first request (ms) | ${ROW[layer_first]:-—} |
| file listing of the same layer, cached (ms) | ${ROW[layer_cached]:-—} |
| berth RSS after all of the above (MiB) | $((rss_kib / 1024)) |
TABLE
