#!/usr/bin/env bash
# Space management with real clients, against one berth whose config holds
# every rule: immutable tags (prod/*), quotas in bytes (small/*) and in tags
# (few/*), retention (ret/*), and GC with a 2 s grace and no background pass.
#  - docker and podman: a push over an immutable tag, and a push over a quota,
#    fail and show berth's message; the same image again is fine; what was
#    there before still pulls.
#  - skopeo: retention keeps the 2 newest tags; `berth repo delete` while
#    serving; then images copied in, some deleted, pulls of the others (every
#    blob verified by digest) and a churn of push/pull/delete of one image
#    while `berth gc` runs over and over through the admin socket; the dry
#    run removes nothing; afterwards the store holds exactly the referenced
#    blobs and `berth fsck` finds the stopped server's folder clean.
# shellcheck disable=SC2317  # helpers are called by name through check
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for tool in docker dockerd podman skopeo jq curl; do
  command -v "$tool" >/dev/null || { echo "FAIL - $tool not found (bash tests/deps.sh installs it)"; exit 1; }
done

GRACE_S=2
# Each image is busybox plus this much random data: a layer of about 2 MiB
# once gzipped (busybox compresses to about 1 MiB). One fits under 3 MiB, two
# distinct ones do not.
PAYLOAD=$((1024 * 1024))
DATA=$T/gc-data

cat >"$T/berth.toml" <<EOF
[gc]
grace = "${GRACE_S}s"
interval = "off"

[[immutable]]
repositories = "prod/*"

[[quota]]
repositories = "small/*"
max_bytes = "3MiB"

[[quota]]
repositories = "few/*"
max_tags = 2

[[retention]]
repositories = "ret/*"
keep_last = 2
EOF

# start_gc_berth: berth with that config, data in $DATA (sets PORT, REG, HOSTREG).
start_gc_berth() {
  BERTH_DELETE_ENABLED=true serve_berth "$T/berth.log" v2_ready --data-dir "$DATA" --config "$T/berth.toml"
}
start_gc_berth
start_dockerd

# note TEXT: a "# TEXT" line on the script's output even from inside a check
# (which keeps its command's output only for a failure).
exec 3>&1
note() { echo "# $*" >&3; }

# ---- helpers ---------------------------------------------------------------------

podman_() {
  timeout 300 podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}

# make_image_tar OUT MARK: busybox rootfs plus data/random of $PAYLOAD random bytes.
make_image_tar() {
  local dir
  make_rootfs_tar "$1" "$2" || return 1
  dir=$(mktemp -d "$T/payload.XXXXXX") && mkdir -p "$dir/data" &&
    head -c "$PAYLOAD" /dev/urandom >"$dir/data/random" &&
    tar -C "$dir" --owner=0 --group=0 --numeric-owner -rf "$1" data
}

# make_layout NAME: an OCI layout $T/oci-NAME (tag latest) of a distinct image;
# sets DIGEST[NAME] (manifest) and LAYER[NAME] (its one layer).
declare -A DIGEST LAYER
make_layout() {
  local m
  make_image_tar "$T/$1.tar" "$1"
  read -r -a m <<<"$(oci_image "$T/oci-$1" "$HOST_ARCH" "$T/$1.tar")"
  oci_ref "$T/oci-$1" latest "$OCI_MANIFEST" "${m[0]}" "${m[1]}"
  DIGEST[$1]=${m[0]}
  LAYER[$1]=$(layer_digests <"$T/oci-$1/blobs/sha256/${m[0]#sha256:}")
}


# docker_push REF: push, print the pushed manifest digest.
docker_push() {
  local out
  out=$(timeout 120 docker push "$1" 2>&1) || { echo "$out" >&2; return 1; }
  grep -oE 'digest: sha256:[0-9a-f]{64}' <<<"$out" | tail -n 1 | cut -d' ' -f2
}
# podman_push REF: push, print the pushed manifest digest.
podman_push() {
  podman_ push --tls-verify=false --digestfile "$T/podman.digest" "$1" >&2 && cat "$T/podman.digest"
}

# berth_gc ARGS...: `berth gc` on the serving folder (so through its admin
# socket); output in $GC_OUT, exit 0 required.
berth_gc() {
  GC_OUT=$(timeout 120 "$BERTH_BIN" gc --data-dir "$DATA" "$@" 2>&1) || { echo "$GC_OUT"; return 1; }
  echo "$GC_OUT"
}
# gc_blobs TEXT: "COUNT SIZE" from "removed N blobs (SIZE)" / "would remove N blobs (SIZE)"; "0 0" if absent.
gc_blobs() {
  local line
  line=$(grep -oE '(removed|would remove) [0-9]+ blobs? \([^)]*\)' <<<"$1" | head -n 1)
  [[ $line =~ ([0-9]+)\ blobs?\ \(([^\)]*)\) ]] && { echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"; return; }
  echo "0 0"
}
nonzero_size() { [[ $1 =~ [1-9] ]]; }
blob_file() { echo "$DATA/blobs/sha256/${1:7:2}/${1#sha256:}"; }

# pull_verify REPO:TAG DIGEST: skopeo copy to a dir; the manifest hashes to
# DIGEST and every blob to its name.
pull_verify() {
  local d f n=0
  d=$(mktemp -d "$T/pull.XXXXXX")
  skopeo_ copy --src-tls-verify=false "docker://$HOSTREG/$1" "dir:$d" >/dev/null || return 1
  expect_eq "$2" "sha256:$(sha256sum <"$d/manifest.json" | cut -d' ' -f1)" || return 1
  for f in "$d"/*; do
    case ${f##*/} in manifest.json | version) continue ;; esac
    expect_eq "${f##*/}" "$(sha256sum <"$f" | cut -d' ' -f1)" || return 1
    n=$((n + 1))
  done
  rm -rf "$d"
  expect_eq 2 "$n"  # config and the one layer
}
skopeo_push() { skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/oci-$1:latest" "docker://$HOSTREG/$2"; }

# ---- 1. immutable tags -------------------------------------------------------------

# Words of berth's DENIED messages ("tag R:T is immutable and already points
# at D; push under a new tag", "repository R would hold U, over its quota of
# L"): the clients must show them to the user.
IMMUTABLE='is immutable'
QUOTA='over its quota'

make_image_tar "$T/a.tar" image-a
make_image_tar "$T/b.tar" image-b
docker_import() { timeout 120 docker import "$T/a.tar" local/a && timeout 120 docker import "$T/b.tar" local/b; }
check "docker import image A, image B" docker_import
APP=$HOSTREG/prod/app:v1

# (check runs its command in a subshell: what a step learns goes through files.)
docker_first() { docker tag local/a "$APP" && docker_push "$APP" >"$T/a.digest" && [ -s "$T/a.digest" ]; }
check "docker push image A as prod/app:v1 (immutable tag, new)" docker_first
A_DIGEST=$(cat "$T/a.digest" 2>/dev/null || true)
docker tag local/b "$APP" || true
refused "docker push image B over prod/app:v1: refused, berth's 'immutable' message shown" \
  "$IMMUTABLE" timeout 120 docker push "$APP"
check "prod/app:v1 still points at image A" expect_eq "$A_DIGEST" "$(manifest_digest prod/app v1)"
docker_again() { docker tag local/a "$APP" && expect_eq "$A_DIGEST" "$(docker_push "$APP")"; }
check "docker push image A as prod/app:v1 again: accepted, same digest" docker_again

PAPP=$HOSTREG/prod/podman:v1
podman_import() { podman_ import "$T/a.tar" local/a && podman_ import "$T/b.tar" local/b; }
check "podman import image A, image B" podman_import
podman_first() { podman_ tag local/a "$PAPP" && podman_push "$PAPP" >"$T/pa.digest" && [ -s "$T/pa.digest" ]; }
check "podman push image A as prod/podman:v1 (immutable tag, new)" podman_first
PA_DIGEST=$(cat "$T/pa.digest" 2>/dev/null || true)
podman_ tag local/b "$PAPP" || true
refused "podman push image B over prod/podman:v1: refused, berth's 'immutable' message shown" \
  "$IMMUTABLE" podman_ push --tls-verify=false "$PAPP"
check "prod/podman:v1 still points at image A" expect_eq "$PA_DIGEST" "$(manifest_digest prod/podman v1)"
podman_again() { podman_ tag local/a "$PAPP" && expect_eq "$PA_DIGEST" "$(podman_push "$PAPP")"; }
check "podman push image A as prod/podman:v1 again: accepted, same digest" podman_again
podman_new_tag() { podman_ tag local/b "$HOSTREG/prod/podman:v2" && podman_push "$HOSTREG/prod/podman:v2"; }
check "podman push image B under a new tag prod/podman:v2: accepted" podman_new_tag

# ---- 2. quotas -----------------------------------------------------------------

docker_quota_first() { docker tag local/a "$HOSTREG/small/docker:v1" && docker_push "$HOSTREG/small/docker:v1" >"$T/sd1.digest"; }
check "docker push image A to small/docker:v1 (about 2 MiB, quota 3 MiB)" docker_quota_first
SD1=$(cat "$T/sd1.digest" 2>/dev/null || true)
docker tag local/b "$HOSTREG/small/docker:v2" || true
refused "docker push image B to small/docker:v2: over the byte quota, berth's message shown" \
  "$QUOTA" timeout 120 docker push "$HOSTREG/small/docker:v2"
check "small/docker lists only v1" expect_eq '["v1"]' "$(api small/docker/tags/list | jq -c '.tags | sort')"
docker_pulls_first() {
  docker rmi "$HOSTREG/small/docker:v1" >/dev/null && timeout 120 docker pull "$HOSTREG/small/docker:v1" >/dev/null &&
    docker image inspect --format '{{join .RepoDigests " "}}' "$HOSTREG/small/docker:v1" | grep -qF "@$SD1"
}
check "docker pull small/docker:v1 (the first image) after the refusal" docker_pulls_first

docker_tags() {
  docker tag local/a "$HOSTREG/few/docker:t1" && docker tag local/a "$HOSTREG/few/docker:t2" &&
    docker_push "$HOSTREG/few/docker:t1" && docker_push "$HOSTREG/few/docker:t2"
}
check "docker push few/docker:t1, t2 (tag quota 2)" docker_tags
docker tag local/a "$HOSTREG/few/docker:t3" || true
refused "docker push few/docker:t3: over the tag quota, berth's message shown" \
  "$QUOTA" timeout 120 docker push "$HOSTREG/few/docker:t3"
check "few/docker lists t1, t2" expect_eq '["t1","t2"]' "$(api few/docker/tags/list | jq -c '.tags | sort')"

podman_quota_first() { podman_ tag local/a "$HOSTREG/small/podman:v1" && podman_push "$HOSTREG/small/podman:v1" >"$T/sp1.digest"; }
check "podman push image A to small/podman:v1" podman_quota_first
SP1=$(cat "$T/sp1.digest" 2>/dev/null || true)
podman_ tag local/b "$HOSTREG/small/podman:v2" || true
refused "podman push image B to small/podman:v2: over the byte quota, berth's message shown" \
  "$QUOTA" podman_ push --tls-verify=false "$HOSTREG/small/podman:v2"
podman_pulls_first() {
  podman_ rmi "$HOSTREG/small/podman:v1" >/dev/null && podman_ pull --tls-verify=false "$HOSTREG/small/podman:v1" >/dev/null &&
    podman_ image inspect --format '{{join .RepoDigests " "}}' "$HOSTREG/small/podman:v1" | tr ' ' '\n' |
    grep -qxF "$HOSTREG/small/podman@$SP1"
}
check "podman pull small/podman:v1 (the first image) after the refusal" podman_pulls_first
podman_tags() {
  podman_ tag local/a "$HOSTREG/few/podman:t1" "$HOSTREG/few/podman:t2" &&
    podman_push "$HOSTREG/few/podman:t1" && podman_push "$HOSTREG/few/podman:t2"
}
check "podman push few/podman:t1, t2 (tag quota 2)" podman_tags
podman_ tag local/a "$HOSTREG/few/podman:t3" || true
refused "podman push few/podman:t3: over the tag quota, berth's message shown" \
  "$QUOTA" podman_ push --tls-verify=false "$HOSTREG/few/podman:t3"

# ---- images for the skopeo parts ---------------------------------------------------

for name in keep1 keep2 keep3 drop1 drop2 churn ret1 ret2 ret3 ret4 shared; do make_layout "$name"; done

# ---- 4. retention ------------------------------------------------------------------

# Push times order retention: a second apart, so no two tags share one.
ret_push() {
  local i
  for i in 1 2 3 4; do
    skopeo_push "ret$i" "ret/app:t$i" >/dev/null || return 1
    [ "$i" = 4 ] || sleep 1.1
  done
}
check "skopeo copy ret/app:t1..t4, a second apart" ret_push
ret_dry_run() {
  berth_gc --dry-run >/dev/null &&
    grep -q 'would remove' <<<"$GC_OUT" && grep -qw 't1' <<<"$GC_OUT" && grep -qw 't2' <<<"$GC_OUT" &&
    expect_eq '["t1","t2","t3","t4"]' "$(skopeo_ list-tags --tls-verify=false "docker://$HOSTREG/ret/app" | jq -c '.Tags | sort')"
}
check "berth gc --dry-run names tags t1 and t2, removes none" ret_dry_run
ret_applied() {
  berth_gc >/dev/null && note "$(grep -E 'removed' <<<"$GC_OUT" | head -n 1)" &&
    expect_eq '["t3","t4"]' "$(skopeo_ list-tags --tls-verify=false "docker://$HOSTREG/ret/app" | jq -c '.Tags | sort')"
}
check "berth gc applies keep_last = 2: skopeo list-tags ret/app shows t3, t4" ret_applied
check "ret/app:t4 pulls, verified by digest" pull_verify ret/app:t4 "${DIGEST[ret4]}"

# ---- 5. repository delete ------------------------------------------------------------

rd_push() { skopeo_push shared rd/gone:latest && skopeo_push shared rd/kept:latest; }
check "skopeo copy rd/gone:latest and rd/kept:latest (one image, shared layers)" rd_push
repo_delete() {
  local out
  out=$(timeout 60 "$BERTH_BIN" repo delete rd/gone --data-dir "$DATA" 2>&1) || { echo "$out"; return 1; }
  note "berth repo delete said: $(grep -v ' WARN ' <<<"$out" | tr '\n' ' ')"
}
check "berth repo delete rd/gone while serving (admin socket)" repo_delete
inspect_not_found() {
  local out rc=0
  out=$(skopeo_ inspect --tls-verify=false "docker://$HOSTREG/rd/gone:latest" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || { echo "inspect succeeded: $out"; return 1; }
  grep -qiE 'manifest unknown|name unknown|not found' <<<"$out" || { echo "not a not-found error: $out"; return 1; }
  note "skopeo said: $(tail -n 1 <<<"$out" | cut -c1-200)"
}
check "skopeo inspect rd/gone:latest fails with not-found" inspect_not_found
check "rd/gone is not in the catalog" expect_eq false "$(api _catalog | jq '.repositories | index("rd/gone") != null')"
check "rd/kept (shares every blob) still pulls, verified by digest" pull_verify rd/kept:latest "${DIGEST[shared]}"

# ---- 3. GC during traffic -------------------------------------------------------------

gc_push_all() {
  local n
  for n in keep1 keep2 keep3 drop1 drop2; do skopeo_push "$n" "gc/$n:latest" >/dev/null || return 1; done
  skopeo_push keep1 gc/drop3:latest >/dev/null  # keep1's blobs and manifest, in a repository deleted below
}
check "skopeo copy gc/keep1..3, gc/drop1..2 and gc/drop3 (= keep1's image)" gc_push_all
gc_delete() { local n; for n in drop1 drop2 drop3; do skopeo_ delete --tls-verify=false "docker://$HOSTREG/gc/$n:latest" || return 1; done; }
check "skopeo delete gc/drop1, gc/drop2, gc/drop3" gc_delete

within_grace() {
  berth_gc --grace 10m >/dev/null &&
    [ -f "$(blob_file "${LAYER[drop1]}")" ] && [ -f "$(blob_file "${LAYER[drop2]}")" ]
}
check "berth gc --grace 10m: the deleted images' layers are within grace, kept" within_grace

sleep $((GRACE_S + 1))
listed_blob() { grep -qE "^[[:space:]]*blob .*${1#sha256:}" <<<"$GC_OUT"; }
dry_run() {
  berth_gc --dry-run >/dev/null || return 1
  read -r DRY_N DRY_SIZE <<<"$(gc_blobs "$GC_OUT")"
  note "dry run: would remove $DRY_N blobs ($DRY_SIZE)"
  [ "$DRY_N" -ge 6 ] || { echo "want >= 6 blobs (drop1, drop2: manifest, config, layer)"; echo "$GC_OUT"; return 1; }
  # Listed as "blob sha256:HEX (SIZE): reason"; gc/drop3's link to keep1's
  # layer is dangling and may be listed as a link, never as a blob.
  { listed_blob "${LAYER[drop1]}" && listed_blob "${LAYER[drop2]}"; } || { echo "layers not listed as blobs"; echo "$GC_OUT"; return 1; }
  ! listed_blob "${LAYER[keep1]}" || { echo "keep1's layer (shared with deleted gc/drop3) listed as a blob"; echo "$GC_OUT"; return 1; }
  { [ -f "$(blob_file "${LAYER[drop1]}")" ] && [ -f "$(blob_file "${LAYER[drop2]}")" ]; } || { echo "dry run removed files"; return 1; }
}
check "berth gc --dry-run lists drop1's and drop2's layers (not keep1's), removes nothing" dry_run

# Pullers: each kept image again and again, until $T/stop exists.
puller() {
  local n out
  until [ -e "$T/stop" ]; do
    for n in keep1 keep2 keep3; do
      if out=$(pull_verify "gc/$n:latest" "${DIGEST[$n]}" 2>&1); then echo "ok gc/$n"
      else echo "FAIL gc/$n: $(tr '\n' ' ' <<<"$out" | cut -c1-400)"; fi
    done
  done
}
# Churn: one image pushed, pulled, deleted, and pushed again after a pause
# around the grace, so its blobs keep becoming candidates while pushes HEAD
# them (skopeo, like docker, skips a blob that answers 200).
churn() {
  local i=0 pause out
  until [ -e "$T/stop" ]; do
    i=$((i + 1))
    if ! out=$(skopeo_push churn gc/churn:latest 2>&1); then echo "FAIL push $i: $(tr '\n' ' ' <<<"$out" | cut -c1-400)"; continue; fi
    if out=$(pull_verify gc/churn:latest "${DIGEST[churn]}" 2>&1); then echo "ok $i"; else echo "FAIL pull $i: $(tr '\n' ' ' <<<"$out" | cut -c1-400)"; fi
    skopeo_ delete --tls-verify=false "docker://$HOSTREG/gc/churn:latest" >/dev/null 2>&1 || echo "FAIL delete $i"
    pause=$(( (RANDOM % 7) * 5 ))  # 0..3 s in steps of 0.5 s
    sleep "$((pause / 10)).$((pause % 10))"
  done
}
rm -f "$T/stop"
puller >"$T/pulls-1.log" 2>&1 & track puller-1 $!; P1=$!
puller >"$T/pulls-2.log" 2>&1 & track puller-2 $!; P2=$!

first_pass() {
  berth_gc >/dev/null || return 1
  read -r N SIZE <<<"$(gc_blobs "$GC_OUT")"
  note "first pass during pulls: removed $N blobs ($SIZE)"
  { [ "$N" -ge 6 ] && nonzero_size "$SIZE"; } || { echo "$GC_OUT"; return 1; }
  { [ ! -e "$(blob_file "${LAYER[drop1]}")" ] && [ ! -e "$(blob_file "${LAYER[drop2]}")" ]; } || { echo "layer files still there"; return 1; }
  [ -f "$(blob_file "${LAYER[keep1]}")" ] || { echo "keep1's layer file is gone"; return 1; }
}
check "berth gc during pulls: removed bytes > 0, the deleted layers' files gone, keep1's kept" first_pass
gone_404() { expect_eq 404 "$(http_status -I "http://$REG/v2/gc/drop1/blobs/${LAYER[drop1]}")"; }
check "HEAD gc/drop1's layer: 404" gone_404

churn >"$T/churn.log" 2>&1 & track churn $!; C1=$!
GC_RUNS=0 GC_FAILS=0 GC_START=$SECONDS
while [ $((SECONDS - GC_START)) -lt 20 ]; do
  GC_RUNS=$((GC_RUNS + 1))
  if berth_gc >"$T/gc-run-$GC_RUNS.out"; then
    # only the passes that found something: most find nothing
    grep -qE 'removed 0 blobs \(0 B\), 0 manifests, 0 tags, 0 links' <<<"$GC_OUT" ||
      echo "# gc $GC_RUNS: $(grep -E 'removed' <<<"$GC_OUT" | head -n 1)"
  else GC_FAILS=$((GC_FAILS + 1)); echo "# gc $GC_RUNS failed: $(tail -n 3 "$T/gc-run-$GC_RUNS.out" | tr '\n' ' ')"; fi
  sleep 0.$((RANDOM % 10))
done
touch "$T/stop"
wait "$P1" "$P2" "$C1" || true

check "berth gc ran $GC_RUNS times during pulls and churn, every run exit 0" expect_eq 0 "$GC_FAILS"
pulls_ok() {
  local ok bad
  ok=$(cat "$T/pulls-1.log" "$T/pulls-2.log" | grep -c '^ok' || true)
  bad=$(cat "$T/pulls-1.log" "$T/pulls-2.log" | grep -c '^FAIL' || true)
  note "pulls during GC: $ok verified, $bad failed"
  grep -h '^FAIL' "$T/pulls-1.log" "$T/pulls-2.log" | head -n 5
  [ "$bad" -eq 0 ] && [ "$ok" -ge 6 ]
}
check "every skopeo pull of the kept images during GC succeeded, digests verified" pulls_ok
churn_ok() {
  local ok bad
  ok=$(grep -c '^ok' "$T/churn.log" || true)
  bad=$(grep -c '^FAIL' "$T/churn.log" || true)
  note "churn during GC: $ok push+pull+delete rounds, $bad failed"
  grep '^FAIL' "$T/churn.log" | head -n 5
  [ "$bad" -eq 0 ] && [ "$ok" -ge 3 ]
}
check "every churn round (push, pull verified, delete of gc/churn) during GC succeeded" churn_ok

# ---- afterwards: the store holds exactly what is referenced ------------------------

sleep $((GRACE_S + 1))
after_traffic() { berth_gc >/dev/null && note "$(grep -E 'removed' <<<"$GC_OUT" | head -n 1)"; }
check "berth gc after the traffic" after_traffic
# /metrics: what the passes reclaimed, and the quota use of a repository with a quota.
metric() { curl -sS --max-time 30 "http://$REG/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
metrics_say() {
  local reclaimed used
  reclaimed=$(metric berth_gc_reclaimed_bytes_total) && used=$(metric 'berth_quota_used_bytes{repository="small/docker"}') &&
    note "metrics: berth_gc_reclaimed_bytes_total $reclaimed, small/docker quota use $used bytes" &&
    awk -v r="$reclaimed" -v u="$used" 'BEGIN { exit !(r > 0 && u > 0) }'
}
check "/metrics: berth_gc_reclaimed_bytes_total > 0, berth_quota_used_bytes for small/docker > 0" metrics_say

# referenced: every tagged manifest in every repository, its config and layers
# (and an index's children). No untagged manifests are expected here.
referenced() {
  local repo tag body digest child
  for repo in $(api '_catalog?n=1000' | jq -r '.repositories[]'); do
    for tag in $(api "$repo/tags/list" | jq -r '.tags // [] | .[]'); do
      body=$(manifest_body "$repo" "$tag")
      digest=sha256:$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)
      echo "$digest"
      jq -r '(.config.digest // empty), (.layers // [] | .[].digest)' <<<"$body"
      for child in $(jq -r '.manifests // [] | .[].digest' <<<"$body"); do
        echo "$child"; manifest_body "$repo" "$child" | jq -r '(.config.digest // empty), (.layers // [] | .[].digest)'
      done
    done
  done | sort -u
}
store_is_referenced() {
  local want have
  want=$(referenced) && have=$(find "$DATA/blobs" -type f -printf 'sha256:%f\n' | sort -u) || return 1
  note "$(wc -l <<<"$have") blob files, $(wc -l <<<"$want") referenced digests"
  [ "$want" = "$have" ] || { diff <(echo "$want") <(echo "$have"); return 1; }
}
check "the store holds exactly the referenced blobs" store_is_referenced
check "gc/keep1 pulls after GC (its blobs were shared with deleted gc/drop3)" pull_verify gc/keep1:latest "${DIGEST[keep1]}"
check "rd/kept still pulls after GC (shared with deleted rd/gone)" pull_verify rd/kept:latest "${DIGEST[shared]}"
check "ret/app:t3 still pulls after GC" pull_verify ret/app:t3 "${DIGEST[ret3]}"

stop_pid berth "$BERTH_PID"
check "berth fsck: the stopped server's folder is clean" "$BERTH_BIN" fsck --data-dir "$DATA"
