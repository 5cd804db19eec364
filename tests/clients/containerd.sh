#!/usr/bin/env bash
# containerd (ctr): pull over plain HTTP, and through a certs.d hosts.toml as a Kubernetes node would.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_berth
start_containerd
make_busybox_layout "$T/layout" latest
IMG=$HOSTREG/busybox:latest
ctr_() { timeout 300 ctr --address "$CTD_SOCK" "$@"; }

check "push busybox:latest (skopeo from an OCI layout)" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/layout:latest" "docker://$IMG"
REGISTRY_DIGEST=$(manifest_digest busybox latest)
check "registry Docker-Content-Digest = pushed digest" expect_eq "$IMG_DIGEST" "$REGISTRY_DIGEST"

# pulled NAMESPACE REF: ctr lists REF with the registry's manifest digest, and the
# layer bytes in its content store hash to the layer digest.
pulled() {
  local listed layer
  listed=$(ctr_ -n "$1" images ls | awk -v ref="$2" '$1 == ref {print $3}') &&
    expect_eq "$REGISTRY_DIGEST" "$listed" &&
    layer=$(manifest_body busybox latest | layer_digests) &&
    expect_eq "$layer" "sha256:$(ctr_ -n "$1" content get "$layer" | sha256sum | cut -d' ' -f1)"
}
# forget NAMESPACE REF: drop the image and garbage-collect its content, so the
# next pull has to fetch every blob from the registry again.
forget() { ctr_ -n "$1" images rm --sync "$2" && expect_eq "" "$(ctr_ -n "$1" content ls -q)"; }

check "ctr images pull --plain-http $IMG" ctr_ -n plain images pull --plain-http "$IMG"
check "ctr image digest and layer content match the registry" pulled plain "$IMG"

# certs.d-style configuration, as written on a Kubernetes node.
mkdir -p "$T/certs.d/$HOSTREG" "$T/certs.d/mirror.invalid"
cat >"$T/certs.d/$HOSTREG/hosts.toml" <<EOF
server = "http://$HOSTREG"

[host."http://$HOSTREG"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
# A mirror entry: mirror.invalid does not resolve, so only the hosts.toml can make this pull work.
cat >"$T/certs.d/mirror.invalid/hosts.toml" <<EOF
server = "https://mirror.invalid"

[host."http://$REG"]
  capabilities = ["pull", "resolve"]
EOF

check "ctr images rm --sync drops the pulled content" forget plain "$IMG"
check "ctr images pull --hosts-dir (server = http://$HOSTREG)" ctr_ -n hosts images pull --hosts-dir "$T/certs.d" "$IMG"
check "hosts-dir pull: digest and layer content match" pulled hosts "$IMG"
forget hosts "$IMG" >/dev/null
check "ctr images pull --hosts-dir via a mirror entry (mirror.invalid → $REG)" \
  ctr_ -n mirror images pull --hosts-dir "$T/certs.d" mirror.invalid/busybox:latest
check "mirror pull: digest and layer content match" pulled mirror mirror.invalid/busybox:latest
