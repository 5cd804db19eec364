#!/usr/bin/env bash
# skopeo: OCI layout → berth, berth → berth, inspect, list-tags, delete, multi-arch index.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_berth
make_busybox_layout "$T/layout" latest
ONE=docker://$HOSTREG/sk/one
TWO=docker://$HOSTREG/sk/two
NO_TLS=(--src-tls-verify=false --dest-tls-verify=false)

check "copy oci:layout → sk/one:latest" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/layout:latest" "$ONE:latest"
check "copy berth → berth sk/one:latest → sk/two:copy" skopeo_ copy --preserve-digests "${NO_TLS[@]}" "$ONE:latest" "$TWO:copy"
check "copy berth → berth sk/two:copy → sk/two:copy2" skopeo_ copy --preserve-digests "${NO_TLS[@]}" "$TWO:copy" "$TWO:copy2"

inspect_digest() { expect_eq "$IMG_DIGEST" "$(skopeo_ inspect --tls-verify=false --format '{{.Digest}}' "$1")"; }
check "inspect sk/one:latest digest = pushed digest" inspect_digest "$ONE:latest"
check "inspect sk/two:copy digest = pushed digest" inspect_digest "$TWO:copy"
inspect_raw() {
  skopeo_ inspect --tls-verify=false --raw "$ONE:latest" >"$T/raw.json" &&
    cmp "$T/raw.json" "$T/layout/blobs/sha256/${IMG_DIGEST#sha256:}"
}
check "inspect --raw returns the exact manifest bytes" inspect_raw
list_tags() { expect_eq "$2" "$(skopeo_ list-tags --tls-verify=false "$1" | jq -c '.Tags | sort')"; }
check "list-tags sk/two" list_tags "$TWO" '["copy","copy2"]'

# skopeo delete resolves the tag and deletes the manifest by digest.
check "skopeo delete sk/one:latest" skopeo_ delete --tls-verify=false "$ONE:latest"
check "sk/one manifest by digest is gone (404)" \
  expect_eq 404 "$(http_status -H "Accept: $ACCEPT_MANIFESTS" "http://$REG/v2/sk/one/manifests/$IMG_DIGEST")"
check "sk/one:latest is gone (404)" \
  expect_eq 404 "$(http_status -H "Accept: $ACCEPT_MANIFESTS" "http://$REG/v2/sk/one/manifests/latest")"
check "sk/two:copy (other repository, same digest) still resolves" expect_eq "$IMG_DIGEST" "$(manifest_digest sk/two copy)"

# Tag deletion is optional in the spec (202, or 400/405 when unsupported); either
# way the other tag sharing the digest must survive.
DEL_STATUS=$(http_status -X DELETE "http://$REG/v2/sk/two/manifests/copy2")
tag_copy2_deleted() {
  case $DEL_STATUS in
    202) expect_eq 404 "$(http_status -H "Accept: $ACCEPT_MANIFESTS" "http://$REG/v2/sk/two/manifests/copy2")" &&
           expect_eq '{"name":"sk/two","tags":["copy"]}' "$(api sk/two/tags/list)" ;;
    400 | 405) true ;;
    *) echo "unexpected status $DEL_STATUS"; return 1 ;;
  esac && expect_eq "$IMG_DIGEST" "$(manifest_digest sk/two copy)"
}
check "DELETE tag sk/two:copy2 → $DEL_STATUS; tag copy (same digest) intact" tag_copy2_deleted

# Multi-arch: an OCI image index with linux/amd64 and linux/arm64 children.
make_multi_layout() {
  local layout=$T/multi arch m entries=() idx
  for arch in amd64 arm64; do
    make_rootfs_tar "$T/rootfs-$arch.tar" "$arch"
    read -r -a m <<<"$(oci_image "$layout" "$arch" "$T/rootfs-$arch.tar")"
    entries+=("$(printf '{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}' \
      "$OCI_MANIFEST" "${m[0]}" "${m[1]}" "$arch")")
  done
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s,%s]}' "$OCI_INDEX" "${entries[0]}" "${entries[1]}" >"$T/index.json"
  read -r -a idx <<<"$(oci_blob "$layout" "$T/index.json")"
  oci_ref "$layout" multi "$OCI_INDEX" "${idx[0]}" "${idx[1]}"
  INDEX_DIGEST=${idx[0]}
}
make_multi_layout
MULTI=docker://$HOSTREG/sk/multi:latest
check "copy --all oci:multi (image index) → sk/multi:latest" \
  skopeo_ copy --all --preserve-digests --dest-tls-verify=false "oci:$T/multi:multi" "$MULTI"

index_served() {
  curl -sS -D "$T/idx.headers" -o "$T/idx.json" -H "Accept: $ACCEPT_MANIFESTS" \
    "http://$REG/v2/sk/multi/manifests/latest" &&
    expect_eq "$INDEX_DIGEST" "$(tr -d '\r' <"$T/idx.headers" | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')" &&
    expect_eq "$OCI_INDEX" "$(tr -d '\r' <"$T/idx.headers" | awk -F': ' 'tolower($1) == "content-type" {print $2}')" &&
    cmp "$T/idx.json" "$T/index.json" &&
    expect_eq '["amd64","arm64"]' "$(jq -c '[.manifests[].platform.architecture]' "$T/idx.json")"
}
check "index served with its digest, media type and exact bytes" index_served

children_served() {
  local d ct layers=()
  for d in $(jq -r '.manifests[].digest' "$T/index.json"); do
    curl -sS -D "$T/child.headers" -o "$T/child.json" -H "Accept: $ACCEPT_MANIFESTS" \
      "http://$REG/v2/sk/multi/manifests/$d" || return 1
    ct=$(tr -d '\r' <"$T/child.headers" | awk -F': ' 'tolower($1) == "content-type" {print $2}')
    expect_eq "$OCI_MANIFEST" "$ct" &&
      expect_eq "$OCI_MANIFEST" "$(jq -r .mediaType "$T/child.json")" &&
      expect_eq "$d" "sha256:$(sha256sum <"$T/child.json" | cut -d' ' -f1)" &&
      expect_eq 200 "$(http_status -I "http://$REG/v2/sk/multi/blobs/$(layer_digests <"$T/child.json")")" || return 1
    layers+=("$(layer_digests <"$T/child.json")")
  done
  [ "${#layers[@]}" = 2 ] && [ "${layers[0]}" != "${layers[1]}" ]
}
check "both child manifests retrievable by digest (OCI manifest type, distinct layers)" children_served
raw_index() { skopeo_ inspect --tls-verify=false --raw "$MULTI" >"$T/raw-index.json" && cmp "$T/raw-index.json" "$T/index.json"; }
check "inspect --raw sk/multi:latest = pushed index" raw_index
