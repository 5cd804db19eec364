# shellcheck shell=bash
# Test content for the browser tests, pushed with skopeo from OCI layouts built
# by tests/clients/lib.sh's helpers (source lib.sh first, then this file).
#
# What the pages need to show, one repository each:
#   demo/app      tags v1 then v2 (newest first on the page); v2 has three
#                 layers (gzip, gzip, zstd), a config with entrypoint, env,
#                 labels, ports, workdir, user and a history line per layer
#                 plus an empty one; layer 2 holds a symlink, a hard link and a
#                 long name, layer 3 whiteouts; an SBOM referrer on v2
#   demo/multi    tag latest: an index for linux/amd64 and linux/arm64
#   demo/busybox  tags 1.0 and latest: the plain lib.sh image (for deletes)

# layer_blob LAYOUT TAR gzip|zstd: compress TAR into LAYOUT's blobs; sets
# LAYER_JSON (its descriptor) and DIFF_ID.
layer_blob() {
  local layout=$1 tarball=$2 codec=$3 out blob media
  out=$(mktemp "$T/layer.XXXXXX")
  DIFF_ID=sha256:$(sha256sum "$tarball" | cut -d' ' -f1)
  case $codec in
    gzip) gzip -n -c "$tarball" >"$out"; media=application/vnd.oci.image.layer.v1.tar+gzip ;;
    zstd) zstd -q -c "$tarball" >"$out"; media=application/vnd.oci.image.layer.v1.tar+zstd ;;
  esac
  read -r -a blob <<<"$(oci_blob "$layout" "$out")"
  LAYER_JSON=$(printf '{"mediaType":"%s","digest":"%s","size":%s}' "$media" "${blob[0]}" "${blob[1]}")
}

# app_layer_tars DIR: layer 2 (files, links, a long name) and layer 3 (whiteouts).
app_layer_tars() {
  local dir=$1 long
  mkdir -p "$dir/l2/app/data" "$dir/l3/app" "$dir/l3/etc"
  echo "hello from berth" >"$dir/l2/app/hello.txt"
  ln -s hello.txt "$dir/l2/app/hello-link"
  ln "$dir/l2/app/hello.txt" "$dir/l2/app/hello-hard"
  long=app/data/$(printf 'a-rather-long-directory-name-%02d/' 1 2 3 4)file-with-a-long-name.txt
  mkdir -p "$dir/l2/$(dirname "$long")"
  head -c 4096 /dev/zero >"$dir/l2/$long"
  chmod 0755 "$dir/l2/app/hello.txt"
  tar -C "$dir/l2" --format=posix --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --pax-option=delete=atime,delete=ctime -cf "$dir/layer2.tar" app
  : >"$dir/l3/etc/.wh.mark"       # deletes etc/mark from layer 1
  : >"$dir/l3/app/.wh.hello-link" # deletes a file of layer 2
  echo "v2" >"$dir/l3/app/version"
  tar -C "$dir/l3" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$dir/layer3.tar" app etc
}

# app_layout LAYOUT TAG: the three-layer image; sets IMG_DIGEST.
app_layout() {
  local layout=$1 tag=$2 work l1 l2 l3 d1 d2 d3 config m
  work=$(mktemp -d "$T/app.XXXXXX")
  make_rootfs_tar "$work/layer1.tar" "$tag"
  app_layer_tars "$work"
  layer_blob "$layout" "$work/layer1.tar" gzip; l1=$LAYER_JSON d1=$DIFF_ID
  layer_blob "$layout" "$work/layer2.tar" gzip; l2=$LAYER_JSON d2=$DIFF_ID
  layer_blob "$layout" "$work/layer3.tar" zstd; l3=$LAYER_JSON d3=$DIFF_ID
  cat >"$work/config.json" <<JSON
{"architecture":"$HOST_ARCH","os":"linux","created":"2026-01-02T03:04:05Z",
 "config":{"User":"1000:1000","WorkingDir":"/app","Entrypoint":["/bin/sh","-c"],"Cmd":["cat /app/hello.txt"],
  "Env":["PATH=/bin","GREETING=hello"],"ExposedPorts":{"8080/tcp":{}},
  "Labels":{"org.opencontainers.image.title":"berth demo app","org.opencontainers.image.version":"$tag"}},
 "rootfs":{"type":"layers","diff_ids":["$d1","$d2","$d3"]},
 "history":[
  {"created":"2026-01-02T03:04:00Z","created_by":"ADD busybox rootfs /"},
  {"created":"2026-01-02T03:04:01Z","created_by":"ENV GREETING=hello","empty_layer":true},
  {"created":"2026-01-02T03:04:02Z","created_by":"COPY app/ /app/"},
  {"created":"2026-01-02T03:04:03Z","created_by":"RUN rm /etc/mark /app/hello-link && echo v2 > /app/version"}]}
JSON
  read -r -a config <<<"$(oci_blob "$layout" "$work/config.json")"
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s,%s,%s]}' \
    "$OCI_MANIFEST" "${config[0]}" "${config[1]}" "$l1" "$l2" "$l3" >"$work/manifest.json"
  read -r -a m <<<"$(oci_blob "$layout" "$work/manifest.json")"
  oci_ref "$layout" "$tag" "$OCI_MANIFEST" "${m[0]}" "${m[1]}"
  IMG_DIGEST=${m[0]}
}

# multi_layout LAYOUT TAG: an index of two single-layer images.
multi_layout() {
  local layout=$1 tag=$2 amd arm work index
  make_rootfs_tar "$T/rootfs-amd64.tar" amd64
  make_rootfs_tar "$T/rootfs-arm64.tar" arm64
  read -r -a amd <<<"$(oci_image "$layout" amd64 "$T/rootfs-amd64.tar")"
  read -r -a arm <<<"$(oci_image "$layout" arm64 "$T/rootfs-arm64.tar")"
  work=$(mktemp -d "$T/index.XXXXXX")
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"arm64","os":"linux"}}]}' \
    "$OCI_INDEX" "$OCI_MANIFEST" "${amd[0]}" "${amd[1]}" "$OCI_MANIFEST" "${arm[0]}" "${arm[1]}" >"$work/index.json"
  read -r -a index <<<"$(oci_blob "$layout" "$work/index.json")"
  oci_ref "$layout" "$tag" "$OCI_INDEX" "${index[0]}" "${index[1]}"
}

# push_referrer REPO SUBJECT_DIGEST SUBJECT_SIZE: an SBOM artifact whose
# subject is the given manifest, put by digest with curl (skopeo 1.9 cannot
# push an untagged manifest); prints its digest.
push_referrer() {
  local repo=$1 subject=$2 size=$3 work blob config_hex sbom_hex digest
  work=$(mktemp -d "$T/sbom.XXXXXX")
  printf '{"spdxVersion":"SPDX-2.3","name":"berth demo app"}' >"$work/sbom.json"
  printf '{}' >"$work/config.json"
  for blob in "$work/config.json" "$work/sbom.json"; do
    curl -fsS -o /dev/null -X POST --data-binary @"$blob" -H 'Content-Type: application/octet-stream' \
      "http://$REG/v2/$repo/blobs/uploads/?digest=sha256:$(sha256sum "$blob" | cut -d' ' -f1)" || return 1
  done
  config_hex=$(sha256sum "$work/config.json" | cut -d' ' -f1)
  sbom_hex=$(sha256sum "$work/sbom.json" | cut -d' ' -f1)
  printf '{"schemaVersion":2,"mediaType":"%s","artifactType":"application/spdx+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:%s","size":2},"layers":[{"mediaType":"application/spdx+json","digest":"sha256:%s","size":%s}],"subject":{"mediaType":"%s","digest":"%s","size":%s}}' \
    "$OCI_MANIFEST" "$config_hex" "$sbom_hex" "$(stat -c %s "$work/sbom.json")" "$OCI_MANIFEST" "$subject" "$size" >"$work/manifest.json"
  digest=sha256:$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
  curl -fsS -o /dev/null -X PUT --data-binary @"$work/manifest.json" -H "Content-Type: $OCI_MANIFEST" \
    "http://$REG/v2/$repo/manifests/$digest" || return 1
  echo "$digest"
}

# seed_registry: push everything above into the berth at $REG; exports what
# the tests look for (SEED_* variables) and BERTH_TEST_LAYOUT, a layout with
# the busybox image that tests starting their own berth can push with skopeo.
seed_registry() {
  local layouts=$T/layouts tag
  mkdir -p "$layouts"
  make_busybox_layout "$layouts/busybox" latest || return 1
  for tag in 1.0 latest; do
    skopeo_ copy --dest-tls-verify=false "oci:$layouts/busybox:latest" "docker://$REG/demo/busybox:$tag" >/dev/null || return 1
  done
  for tag in v1 v2; do
    app_layout "$layouts/app-$tag" "$tag" || return 1
    # one second apart, so that "newest first" has an order to show
    sleep 1.1
    skopeo_ copy --dest-tls-verify=false "oci:$layouts/app-$tag:$tag" "docker://$REG/demo/app:$tag" >/dev/null || return 1
  done
  export SEED_APP_DIGEST=$IMG_DIGEST
  SEED_SBOM_DIGEST=$(push_referrer demo/app "$IMG_DIGEST" "$(stat -c %s "$layouts/app-v2/blobs/sha256/${IMG_DIGEST#sha256:}")") || return 1
  export SEED_SBOM_DIGEST
  multi_layout "$layouts/multi" latest || return 1
  skopeo_ copy --all --dest-tls-verify=false "oci:$layouts/multi:latest" "docker://$REG/demo/multi:latest" >/dev/null || return 1
  export BERTH_TEST_LAYOUT=$layouts/busybox
}
