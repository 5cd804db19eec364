#!/usr/bin/env bash
# podman (root, isolated vfs storage; no `podman run` here): import → push → rmi → pull.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_berth
make_rootfs_tar "$T/rootfs.tar"
IMG=$HOSTREG/pod/busybox:latest
podman_() {
  timeout 300 podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}

check "podman import busybox rootfs" podman_ import "$T/rootfs.tar" "$IMG"
IMAGE_ID=$(podman_ image inspect --format '{{.ID}}' "$IMG" 2>/dev/null || true)
check "podman push --tls-verify=false $IMG" \
  podman_ push --tls-verify=false --digestfile "$T/pushed.digest" "$IMG"

pushed_digest_is_served() {
  local pushed
  pushed=$(cat "$T/pushed.digest") && expect_eq "$pushed" "$(manifest_digest pod/busybox latest)"
}
check "pushed digest = registry Docker-Content-Digest" pushed_digest_is_served

removed() { podman_ rmi "$IMG" && ! podman_ image exists "$IMG"; }
check "podman rmi removes the local image" removed
check "podman pull --tls-verify=false $IMG" podman_ pull --tls-verify=false "$IMG"

same_image() {
  local id digest
  id=$(podman_ image inspect --format '{{.ID}}' "$IMG") &&
    digest=$(podman_ image inspect --format '{{.Digest}}' "$IMG") &&
    expect_eq "$IMAGE_ID" "$id" && expect_eq "$(cat "$T/pushed.digest")" "$digest"
}
check "pulled image ID and manifest digest match what was pushed" same_image
check "tags/list pod/busybox" expect_eq '{"name":"pod/busybox","tags":["latest"]}' "$(api pod/busybox/tags/list)"
