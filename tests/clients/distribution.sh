#!/usr/bin/env bash
# registry:2 → berth: fill a real CNCF distribution (Debian's docker-registry)
# with docker and skopeo, stop it, `berth import-distribution` its folder in
# place (the image's /var/lib/registry case), and check that berth serves
# what distribution served; a corrupt copy imports everything but the damage.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA=$T/berth-data   # distribution's rootdirectory, then berth's data folder
DIST_PORT=$(free_port); DIST=127.0.0.1:$DIST_PORT; DISTHOST=localhost:$DIST_PORT
mkdir -p "$DATA"
cat >"$T/distribution.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DATA
  delete:
    enabled: true
http:
  addr: $DIST
YML
# lib.sh exports REGISTRY_AUTH_FILE for skopeo; distribution would read it as its auth.file setting.
env -u REGISTRY_AUTH_FILE docker-registry serve "$T/distribution.yml" >"$T/distribution.log" 2>&1 &
DIST_PID=$!; track distribution "$DIST_PID"
wait_for 30 curl -sf "http://$DIST/v2/" || { echo "distribution did not start:" >&2; cat "$T/distribution.log" >&2; exit 1; }
echo "# distribution pid $DIST_PID on $DIST"

# --- fill distribution ---------------------------------------------------------
start_dockerd
make_rootfs_tar "$T/rootfs.tar"
check "docker import+push busybox:latest to distribution" \
  sh -c "timeout 120 docker import '$T/rootfs.tar' '$DISTHOST/busybox:latest' && timeout 300 docker push '$DISTHOST/busybox:latest'"
check "docker tag+push busybox:stable (a second tag on the same digest)" \
  sh -c "docker tag '$DISTHOST/busybox:latest' '$DISTHOST/busybox:stable' && timeout 300 docker push '$DISTHOST/busybox:stable'"

make_busybox_layout "$T/layout" v1
check "skopeo copy → team/tools/bb:v1 (nested name)" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/layout:v1" "docker://$DIST/team/tools/bb:v1"

make_multi_layout() {
  local layout=$T/multi arch m entries=() idx
  for arch in amd64 arm64; do
    make_rootfs_tar "$T/rootfs-$arch.tar" "$arch"
    read -r -a m <<<"$(oci_image "$layout" "$arch" "$T/rootfs-$arch.tar")"
    entries+=("$(printf '{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}' \
      "$OCI_MANIFEST" "${m[0]}" "${m[1]}" "$arch")")
    [ "$arch" = arm64 ] && ARM64_MANIFEST=${m[0]}
  done
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s,%s]}' "$OCI_INDEX" "${entries[0]}" "${entries[1]}" >"$T/index.json"
  read -r -a idx <<<"$(oci_blob "$layout" "$T/index.json")"
  oci_ref "$layout" multi "$OCI_INDEX" "${idx[0]}" "${idx[1]}"
  INDEX_DIGEST=${idx[0]}
}
make_multi_layout
check "skopeo copy --all → multi:latest (OCI index, amd64+arm64)" \
  skopeo_ copy --all --preserve-digests --dest-tls-verify=false "oci:$T/multi:multi" "docker://$DIST/multi:latest"

# An untagged revision in busybox, pushed by digest with plain HTTP; its
# 64 MiB layer gives the import something to measure.
push_blob_to() {  # push_blob_to REGISTRY REPO FILE
  local digest loc
  digest=sha256:$(sha256sum "$3" | cut -d' ' -f1)
  loc=$(curl -sS -X POST -D - -o /dev/null "http://$1/v2/$2/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1) == "location" {print $2}')
  case $loc in http*) ;; *) loc=http://$1$loc ;; esac
  case $loc in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
  expect_eq 201 "$(http_status -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$3" "$loc")"
}
push_untagged() {
  local layer config
  head -c $((64 << 20)) /dev/urandom >"$T/big.layer" &&
    printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' "$HOST_ARCH" >"$T/big.config" &&
    push_blob_to "$DIST" busybox "$T/big.layer" && push_blob_to "$DIST" busybox "$T/big.config" &&
    layer=sha256:$(sha256sum "$T/big.layer" | cut -d' ' -f1) &&
    config=sha256:$(sha256sum "$T/big.config" | cut -d' ' -f1) &&
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
      "$OCI_MANIFEST" "$config" "$(stat -c %s "$T/big.config")" "$layer" "$(stat -c %s "$T/big.layer")" >"$T/untagged.json" &&
    UNTAGGED=sha256:$(sha256sum "$T/untagged.json" | cut -d' ' -f1) &&
    echo "$UNTAGGED" >"$T/untagged.digest" &&
    expect_eq 201 "$(http_status -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary "@$T/untagged.json" "http://$DIST/v2/busybox/manifests/$UNTAGGED")"
}
check "PUT an untagged manifest by digest into busybox (64 MiB layer)" push_untagged
UNTAGGED=$(cat "$T/untagged.digest" 2>/dev/null || echo missing)

# What distribution serves, to compare berth with after the import.
REPOS=(busybox multi team/tools/bb)
snapshot() {  # snapshot REGISTRY OUT: catalog, tags and tag digests, one per line
  local reg=$1 repo tag
  {
    curl -sS "http://$reg/v2/_catalog" | jq -c .repositories
    for repo in "${REPOS[@]}"; do
      for tag in $(curl -sS "http://$reg/v2/$repo/tags/list" | jq -r '.tags[]' | sort); do
        echo "$repo:$tag $(REG=$reg manifest_digest "$repo" "$tag")"
      done
    done
    echo "busybox@$UNTAGGED $(REG=$reg manifest_digest busybox "$UNTAGGED")"
    echo "multi@$ARM64_MANIFEST $(REG=$reg manifest_digest multi "$ARM64_MANIFEST")"
  } >"$2"
}
snapshot "$DIST" "$T/distribution.snapshot"
check "distribution serves 3 repositories, 4 tags and the untagged manifest" \
  sh -c "grep -c . '$T/distribution.snapshot' | grep -qx 7 && ! grep -q ' \$' '$T/distribution.snapshot'"
echo "# distribution serves:"; sed 's/^/#   /' "$T/distribution.snapshot"
stop_pid distribution "$DIST_PID"
cp -a "$DATA/docker" "$T/corrupt-src"   # a copy to damage later

# --- berth ---------------------------------------------------------------------
serve_refuses() {
  local rc=0
  "$BERTH_BIN" serve --addr "127.0.0.1:$(free_port)" --data-dir "$DATA" >"$T/refused.log" 2>&1 || rc=$?
  expect_eq 2 "$rc" && grep -q "berth import-distribution $DATA" "$T/refused.log"
}
check "berth serve on the unimported registry:2 folder exits 2 naming import-distribution" serve_refuses

import_in_place() {
  "$BERTH_BIN" import-distribution "$DATA" --data-dir "$DATA" >"$T/import1.out" 2>"$T/import1.err" || { cat "$T/import1.out" "$T/import1.err"; return 1; }
  cat "$T/import1.out"
  grep -q "4 tags, 6 manifests, 10 blobs .*, 10 hard-linked, 0 copied); 3 repositories now in berth" "$T/import1.out"
}
check "berth import-distribution in place: 4 tags, 6 manifests, 10 blobs hard-linked, 3 repositories" import_in_place
echo "# $(head -n 1 "$T/import1.out")"
big_layer_shared() {
  local hex
  hex=$(sha256sum "$T/big.layer" | cut -d' ' -f1)
  expect_eq "$(stat -c %i "$DATA/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data")" "$(stat -c %i "$DATA/blobs/sha256/${hex:0:2}/$hex")"
}
check "in place, berth's blob file is registry:2's (same inode, no second copy)" big_layer_shared
import_copying() {
  "$BERTH_BIN" import-distribution "$DATA" --data-dir "$T/copied-data" --copy >"$T/import-copy.out" 2>/dev/null || { cat "$T/import-copy.out"; return 1; }
  grep -q "10 blobs .*, 0 hard-linked, 10 copied)" "$T/import-copy.out" &&
    "$BERTH_BIN" fsck --data-dir "$T/copied-data"
}
check "import-distribution --copy into another folder copies all 10 blobs (fsck clean)" import_copying
echo "# $(head -n 1 "$T/import-copy.out")"
check "no progress bar off a terminal: plain import: lines on stderr" grep -q '^import: ' "$T/import1.err"

start_berth
snapshot "$REG" "$T/berth.snapshot"
check "berth serves the catalog, tags and digests distribution served" \
  sh -c "diff -u '$T/distribution.snapshot' '$T/berth.snapshot'"

pull_and_run() {
  docker rmi "$DISTHOST/busybox:latest" "$DISTHOST/busybox:stable" >/dev/null &&
    timeout 300 docker pull "$HOSTREG/busybox:latest" >/dev/null &&
    expect_eq ok "$(timeout 120 docker run --rm --network none "$HOSTREG/busybox:latest" /bin/busybox echo ok)"
}
check "docker pulls busybox:latest from berth and runs it" pull_and_run
copy_index() {
  skopeo_ copy --all --preserve-digests --src-tls-verify=false "docker://$REG/multi:latest" "oci:$T/copied:multi" &&
    expect_eq "$INDEX_DIGEST" "$(jq -r '.manifests[0].digest' "$T/copied/index.json")"
}
check "skopeo copy --all the index back out of berth (same index digest)" copy_index

import_while_serving() {
  local rc=0
  "$BERTH_BIN" import-distribution "$DATA" --data-dir "$DATA" >"$T/busy.log" 2>&1 || rc=$?
  expect_eq 2 "$rc" && grep -q "in use" "$T/busy.log"
}
check "import-distribution refuses while berth serves the folder" import_while_serving
stop_pid berth "$BERTH_PID"

import_again() {
  "$BERTH_BIN" import-distribution "$DATA" --data-dir "$DATA" >"$T/import2.out" 2>/dev/null || { cat "$T/import2.out"; return 1; }
  cat "$T/import2.out"
  grep -q "0 tags, 0 manifests, 0 blobs (0 B" "$T/import2.out" &&
    grep -q "already in berth: 4 tags, 6 manifests" "$T/import2.out"
}
check "a second import copies nothing" import_again

# --- a damaged tree --------------------------------------------------------------
corrupt_import() {
  local layer path rc=0
  layer=$(jq -r '.layers[0].digest' <"$T/multi/blobs/sha256/${ARM64_MANIFEST#sha256:}") &&
    path=$T/corrupt-src/registry/v2/blobs/sha256/${layer:7:2}/${layer#sha256:}/data &&
    printf 'damage' | dd of="$path" bs=1 seek=100 conv=notrunc status=none &&
    { "$BERTH_BIN" import-distribution "$T/corrupt-src/registry/v2" --data-dir "$T/corrupt-data" >"$T/import3.out" 2>/dev/null || rc=$?; }
  cat "$T/import3.out"
  expect_eq 1 "$rc" &&
    grep -q "skipped: multi: blob $layer: corrupt" "$T/import3.out" &&
    grep -q "skipped: multi: manifest $ARM64_MANIFEST: needs blob $layer" "$T/import3.out" &&
    grep -q "skipped: multi: manifest $INDEX_DIGEST: needs manifest $ARM64_MANIFEST" "$T/import3.out" &&
    grep -q "skipped: multi: tag latest" "$T/import3.out" &&
    grep -q "3 tags, 4 manifests, .*; 3 repositories now in berth" "$T/import3.out"
}
check "a corrupt layer: reported, what needs it skipped, the rest imported, exit 1" corrupt_import
check "berth fsck: the damaged tree's import is clean" "$BERTH_BIN" fsck --data-dir "$T/corrupt-data"
# lib.sh's cleanup runs `berth fsck` on $DATA too.
