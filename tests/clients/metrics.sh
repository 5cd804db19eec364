#!/usr/bin/env bash
# /metrics after a real push and pull (skopeo): parsed with PyPI's
# prometheus-client (OpenMetrics and classic text parsers), counters moved,
# gauges match the catalog, histogram buckets monotone; /healthz and /readyz.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV=${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/metrics-venv
PY=$VENV/bin/python
make_venv() {
  "$PY" -c 'import prometheus_client' 2>/dev/null && return 0
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'prometheus-client>=0.20,<1'
}
check "venv with prometheus-client ($VENV)" make_venv

start_berth
scrape() { curl -sS --max-time 30 -o "$T/$1" -w '%{http_code} %{content_type}' "http://$REG/metrics"; }
scraped() { [[ "$(scrape "$1")" == "200 application/openmetrics-text"* ]]; }

check "GET /healthz → 200" expect_eq 200 "$(http_status "http://$REG/healthz")"
check "GET /readyz → 200" expect_eq 200 "$(http_status "http://$REG/readyz")"
check "GET /metrics from loopback → 200 OpenMetrics text (before)" scraped before.txt

make_busybox_layout "$T/layout" latest
check "skopeo push oci layout → $HOSTREG/metrics/busybox:latest" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/layout:latest" "docker://$HOSTREG/metrics/busybox:latest"
check "GET /metrics (after push)" scraped pushed.txt
check "skopeo pull $HOSTREG/metrics/busybox:latest → oci layout" \
  skopeo_ copy --src-tls-verify=false "docker://$HOSTREG/metrics/busybox:latest" "oci:$T/pulled:latest"
# Store totals are cached 5 s between scrapes: let the one after the pull be fresh.
sleep 5.5
check "GET /metrics (after pull)" scraped pulled.txt

check "metrics parse and follow the push and the pull" \
  "$PY" "$REPO_ROOT/tests/clients/metrics_check.py" "$REG" "$T/layout" "$T/before.txt" "$T/pushed.txt" "$T/pulled.txt"

# Break the data folder under the running server; readiness must say so.
broken_readyz() {
  mv "$T/berth-data/blobs" "$T/berth-data/blobs.aside" &&
    expect_eq 503 "$(http_status "http://$REG/readyz")" &&
    expect_eq failed "$(curl -sS "http://$REG/readyz" | jq -r .blob_store)" &&
    expect_eq 200 "$(http_status "http://$REG/healthz")" &&
    mv "$T/berth-data/blobs.aside" "$T/berth-data/blobs" &&
    expect_eq 200 "$(http_status "http://$REG/readyz")"
}
check "GET /readyz → 503 while blobs/ is gone, 200 once it is back" broken_readyz
