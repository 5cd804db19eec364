#!/usr/bin/env bash
# The README walkthrough: push busybox:latest, then read it back with curl.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_berth
make_busybox_layout "$T/layout" latest
check "skopeo copy oci layout → $HOSTREG/busybox:latest" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/layout:latest" "docker://$HOSTREG/busybox:latest"

check "GET /v2/_catalog" expect_eq '{"repositories":["busybox"]}' "$(curl -s "http://$REG/v2/_catalog")"
check "GET /v2/busybox/tags/list" expect_eq '{"name":"busybox","tags":["latest"]}' "$(curl -s "http://$REG/v2/busybox/tags/list")"

manifest_as_pushed() {
  curl -sS -D "$T/headers" -o "$T/manifest.json" -H "Accept: $ACCEPT_MANIFESTS" \
    "http://$REG/v2/busybox/manifests/latest" || return 1
  local header body_digest content_type
  header=$(tr -d '\r' <"$T/headers" | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
  content_type=$(tr -d '\r' <"$T/headers" | awk -F': ' 'tolower($1) == "content-type" {print $2}')
  body_digest=sha256:$(sha256sum <"$T/manifest.json" | cut -d' ' -f1)
  head -n 1 "$T/headers" | grep -q ' 200' &&
    expect_eq "$body_digest" "$header" &&
    expect_eq "$IMG_DIGEST" "$header" &&
    expect_eq "$OCI_MANIFEST" "$content_type" &&
    cmp "$T/manifest.json" "$T/layout/blobs/sha256/${IMG_DIGEST#sha256:}"
}
check "GET /v2/busybox/manifests/latest: exact bytes, Docker-Content-Digest = sha256(body)" manifest_as_pushed
