#!/usr/bin/env bash
# docker: import → push (two repositories sharing a layer) → rmi → pull → run.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start_berth
start_dockerd
make_rootfs_tar "$T/rootfs.tar"
IMG=$HOSTREG/busybox:latest
APP=$HOSTREG/team/app:v1

check "docker import busybox rootfs" timeout 120 docker import "$T/rootfs.tar" "$IMG"
check "docker push $IMG" timeout 300 docker push "$IMG"
push_app() {
  docker tag "$IMG" "$APP" || return 1
  timeout 300 docker push "$APP" >"$T/push-app.log" 2>&1 || { cat "$T/push-app.log"; return 1; }
}
check "docker tag+push $APP (name with a slash)" push_app
echo "# layer in team/app: $(grep -oE 'Mounted from .*|Layer already exists|Pushed' "$T/push-app.log" | head -n 1 || true)"

pushed_digest_recorded() {
  local want
  want=$(manifest_digest busybox latest) &&
    docker image inspect --format '{{join .RepoDigests " "}}' "$IMG" | grep -qF "$HOSTREG/busybox@$want"
}
check "docker records the registry's Docker-Content-Digest after push" pushed_digest_recorded

all_refs_gone() {
  docker rmi "$IMG" "$APP" &&
    ! docker image inspect "$IMG" >/dev/null 2>&1 &&
    ! docker image inspect "$APP" >/dev/null 2>&1
}
check "docker rmi removes every local ref" all_refs_gone
check "docker pull $IMG" timeout 300 docker pull "$IMG"

pulled_digest_matches() {
  local want got
  want=$(manifest_digest busybox latest) &&
    got=$(docker image inspect --format '{{index .RepoDigests 0}}' "$IMG") &&
    expect_eq "$HOSTREG/busybox@$want" "$got"
}
check "pulled image's repo digest = registry Docker-Content-Digest" pulled_digest_matches

run_prints_ok() { expect_eq ok "$(timeout 120 docker run --rm --network none "$IMG" /bin/busybox echo ok)"; }
check "docker run --rm --network none $IMG prints ok" run_prints_ok

check "tags/list busybox" expect_eq '{"name":"busybox","tags":["latest"]}' "$(api busybox/tags/list)"
check "tags/list team/app" expect_eq '{"name":"team/app","tags":["v1"]}' "$(api team/app/tags/list)"

same_layers() {
  local a b
  a=$(manifest_body busybox latest | layer_digests) &&
    b=$(manifest_body team/app v1 | layer_digests) &&
    [ -n "$a" ] && expect_eq "$a" "$b" &&
    for d in $a; do expect_eq 200 "$(http_status -I "http://$REG/v2/team/app/blobs/$d")" || return 1; done
}
check "both repositories reference the same layer digests" same_layers

catalog_has_both() { api _catalog | jq -e '.repositories | index("busybox") and index("team/app")'; }
check "_catalog lists busybox and team/app" catalog_has_both
