#!/usr/bin/env bash
# Two stateless replicas on one Garage bucket and one PostgreSQL database behave
# as one registry for real clients: push through one, pull through the other
# (docker, podman, skopeo, ctr); a chunked upload moving between replicas; one
# replica killed (kill -9) in the middle of a large docker push behind a
# round-robin proxy, the client's retry finishing through the other; 20
# concurrent pushes of one tag split across both ending in one state. Then
# berth on a three-node Garage cluster (replication factor 3) keeps serving
# pushes and pulls with one node stopped.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_engines
start_postgres "$T/pg"
start_garage "$T/garage"

# start_replica NAME METADATA_URL: `berth serve` on the exported S3 variables
# and METADATA_URL, its own scratch folder; sets NAME_REG, NAME_HOST, NAME_PID.
start_replica() {
  local name=$1 url=$2
  BERTH_DELETE_ENABLED=true serve_berth "$T/replica-$name.log.$SECONDS" v2_ready \
    --data-dir "$T/replica-$name" --metadata-url "$url" || return 1
  printf -v "${name}_REG" %s "$REG"
  printf -v "${name}_HOST" %s "$HOSTREG"
  printf -v "${name}_PID" %s "$BERTH_PID"
}
start_replica A "$PG_URL"
start_replica B "$PG_URL"

# digest_at REG REPO REF: Docker-Content-Digest of a HEAD on REG.
digest_at() { REG=$1 manifest_digest "$2" "$3"; }
# blob_sha_at REG REPO DIGEST: the sha256 digest of the blob's bytes as REG serves them.
blob_sha_at() { echo "sha256:$(curl -sSf --max-time 120 "http://$1/v2/$2/blobs/$3" | sha256sum | cut -d' ' -f1)"; }

# ---- docker: push through A, pull and run through B -----------------------------
start_dockerd
make_rootfs_tar "$T/rootfs.tar"
check "docker import busybox rootfs as $A_HOST/rep/busybox:v1" \
  timeout 120 docker import "$T/rootfs.tar" "$A_HOST/rep/busybox:v1"
check "docker push through replica A" timeout 300 docker push "$A_HOST/rep/busybox:v1"
forget_local() { docker rmi "$@" >/dev/null && for ref in "$@"; do ! docker image inspect "$ref" >/dev/null 2>&1 || return 1; done; }
check "docker rmi drops the local image" forget_local "$A_HOST/rep/busybox:v1"
check "docker pull through replica B" timeout 300 docker pull "$B_HOST/rep/busybox:v1"
same_digest_both() {
  local a b
  a=$(digest_at "$A_REG" "$1" "$2") && b=$(digest_at "$B_REG" "$1" "$2") && [ -n "$a" ] && expect_eq "$a" "$b"
}
check "rep/busybox:v1 has the same digest through A and B" same_digest_both rep/busybox v1
pulled_digest_is_as() {
  expect_eq "$B_HOST/rep/busybox@$(digest_at "$A_REG" rep/busybox v1)" \
    "$(docker image inspect --format '{{index .RepoDigests 0}}' "$B_HOST/rep/busybox:v1")"
}
check "the image pulled through B has the digest A recorded" pulled_digest_is_as
# Where it went: the layer is an object in the bucket, the replicas' folders
# hold only their lock and admin socket (no blobs, no meta.db: the metadata is
# in PostgreSQL).
in_shared_stores() {
  local layer
  layer=$(REG=$A_REG manifest_body rep/busybox v1 | jq -r '.layers[0].digest') &&
    s3_has "blobs/sha256/${layer:7:2}/${layer#sha256:}" &&
    expect_eq "" "$(find "$T/replica-A" "$T/replica-B" -mindepth 1 -maxdepth 1 \
      ! -name berth.lock ! -name admin.sock -printf '%f ')"
}
check "the layer is in the Garage bucket; the replicas' folders hold no blobs nor meta.db" in_shared_stores
runs_ok() { expect_eq ok "$(timeout 120 docker run --rm --network none "$1" /bin/busybox echo ok)"; }
check "docker run --network none of the image pulled through B prints ok" runs_ok "$B_HOST/rep/busybox:v1"

# ---- podman, skopeo, ctr: push through B, pull through A -----------------------------
podman_() {
  timeout 300 podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}
make_rootfs_tar "$T/rootfs-pod.tar" podman
podman_push_b() {
  podman_ import "$T/rootfs-pod.tar" "$B_HOST/rep/pod:v1" >/dev/null &&
    podman_ push --tls-verify=false --digestfile "$T/pod.digest" "$B_HOST/rep/pod:v1"
}
check "podman import + push through replica B" podman_push_b
check "podman rmi" podman_ rmi "$B_HOST/rep/pod:v1"
check "podman pull through replica A" podman_ pull --tls-verify=false "$A_HOST/rep/pod:v1"
podman_pulled_as_pushed() {
  expect_eq "$(cat "$T/pod.digest")" "$(podman_ image inspect --format '{{.Digest}}' "$A_HOST/rep/pod:v1")"
}
check "podman: the digest pulled through A = the digest pushed through B" podman_pulled_as_pushed

make_busybox_layout "$T/layout" v1
SKOPEO_DIGEST=$IMG_DIGEST
check "skopeo copy oci layout → replica B rep/sko:v1" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/layout:v1" "docker://$B_HOST/rep/sko:v1"
skopeo_back_through_a() {
  skopeo_ copy --src-tls-verify=false "docker://$A_HOST/rep/sko:v1" "oci:$T/back:v1" >/dev/null &&
    expect_eq "$SKOPEO_DIGEST" "$(jq -r '.manifests[0].digest' "$T/back/index.json")" &&
    cmp "$T/back/blobs/sha256/${SKOPEO_DIGEST#sha256:}" "$T/layout/blobs/sha256/${SKOPEO_DIGEST#sha256:}"
}
check "skopeo copy replica A → oci layout: same manifest bytes as pushed through B" skopeo_back_through_a

start_containerd
ctr_pulled() {
  local listed
  timeout 300 ctr --address "$CTD_SOCK" images pull --plain-http "$A_HOST/rep/sko:v1" >/dev/null &&
    listed=$(timeout 60 ctr --address "$CTD_SOCK" images ls | awk -v ref="$A_HOST/rep/sko:v1" '$1 == ref {print $3}') &&
    expect_eq "$SKOPEO_DIGEST" "$listed"
}
check "ctr images pull --plain-http through replica A of the image pushed through B" ctr_pulled

# ---- a chunked upload begun on A, finished on B -----------------------------------
# Chunks cross the 8 MiB S3 part size on A, then B continues from the state A
# left in the database: 3 MiB + 7 MiB PATCHed on A, 4 MiB PATCHed on B, 1 MiB in B's PUT.
head -c $((3 << 20)) /dev/urandom >"$T/chunk1"
head -c $((7 << 20)) /dev/urandom >"$T/chunk2"
head -c $((4 << 20)) /dev/urandom >"$T/chunk3"
head -c $((1 << 20)) /dev/urandom >"$T/chunk4"
CHUNKED_DIGEST=sha256:$(cat "$T"/chunk{1,2,3,4} | sha256sum | cut -d' ' -f1)
# location_path HEADERS: the path (and query) of the Location header.
location_path() { tr -d '\r' <"$1" | awk -F': ' 'tolower($1) == "location" {print $2}' | sed -E 's#^https?://[^/]+##'; }
# patch_chunk REG FILE FROM: PATCH FILE at offset FROM to the current upload location; 202 moves it.
patch_chunk() {
  local size status
  size=$(stat -c %s "$2")
  status=$(curl -sS --max-time 120 -o /dev/null -D "$T/patch.headers" -w '%{http_code}' -X PATCH \
    -H 'Content-Type: application/octet-stream' -H "Content-Range: $3-$(($3 + size - 1))" \
    --data-binary @"$2" "http://$1$UPLOAD") || return 1
  expect_eq 202 "$status" || return 1
  UPLOAD=$(location_path "$T/patch.headers")
}
chunked_across() {
  curl -sS --max-time 30 -o /dev/null -D "$T/post.headers" -X POST "http://$A_REG/v2/rep/chunked/blobs/uploads/" &&
    UPLOAD=$(location_path "$T/post.headers") && [ -n "$UPLOAD" ] &&
    patch_chunk "$A_REG" "$T/chunk1" 0 &&
    patch_chunk "$A_REG" "$T/chunk2" $((3 << 20)) &&
    expect_eq 416 "$(http_status -X PATCH -H 'Content-Type: application/octet-stream' \
      -H "Content-Range: 0-$(((4 << 20) - 1))" --data-binary @"$T/chunk3" "http://$B_REG$UPLOAD")" &&
    patch_chunk "$B_REG" "$T/chunk3" $((10 << 20)) &&
    expect_eq 201 "$(http_status -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$T/chunk4" \
      "http://$B_REG$UPLOAD$([[ $UPLOAD == *\?* ]] && echo '&' || echo '?')digest=$CHUNKED_DIGEST")"
}
check "chunked upload: POST+PATCH+PATCH on A, a stale-offset PATCH on B refused 416, PATCH+PUT on B" chunked_across
check "the blob read back through A has the digest of the four chunks" \
  expect_eq "$CHUNKED_DIGEST" "$(blob_sha_at "$A_REG" rep/chunked "$CHUNKED_DIGEST")"

# ---- kill -9 of a replica in the middle of a large docker push ------------------------
# The client talks to a round-robin proxy in front of both replicas (a load
# balancer without sticky sessions). When one backend has received 64 MiB of
# the 200 MiB layer, that replica is killed; docker retries the layer on a new
# connection, which the proxy gives to the replica still up.
python3 "$REPO_ROOT/tests/clients/rr_proxy.py" "$T/proxy.port" "$A_REG" "$B_REG" >"$T/proxy.log" 2>&1 &
track rr_proxy $!
wait_for 10 test -s "$T/proxy.port"
LB=localhost:$(cat "$T/proxy.port")
mkdir -p "$T/big"
tar -C "$T/big" -xf "$T/rootfs.tar"
head -c $((200 << 20)) /dev/urandom >"$T/big/etc/random.bin"
tar -C "$T/big" -cf "$T/big.tar" bin etc
rm -rf "$T/big"
check "docker import a 200 MiB layer as $LB/rep/big:v1" timeout 120 docker import "$T/big.tar" "$LB/rep/big:v1"
rm -f "$T/big.tar"
timeout 300 docker push "$LB/rep/big:v1" >"$T/big-push.log" 2>&1 &
PUSH_PID=$!
# The replica carrying the upload, once 64 MiB of it went through the proxy.
KILLED="" deadline=$((SECONDS + 120))
while [ -z "$KILLED" ] && [ "$SECONDS" -lt "$deadline" ] && kill -0 "$PUSH_PID" 2>/dev/null; do
  busy=$(awk '$5 == "up" && $6 >= 64 {print $4; exit}' "$T/proxy.log")
  case $busy in
    "$A_REG") KILLED=A; kill -9 "$A_PID" ;;
    "$B_REG") KILLED=B; kill -9 "$B_PID" ;;
    *) sleep 0.05 ;;
  esac
done
echo "# killed replica $KILLED (kill -9) with 64 MiB of the layer sent to it"
push_rc=0
wait "$PUSH_PID" || push_rc=$?
echo "# docker said: $(grep -iE 'retrying|error|digest' "$T/big-push.log" | tr -s '\r\n' '  ' | cut -c1-300)"
check "a replica was killed in the middle of the upload" test -n "$KILLED"
pushed_despite_kill() { [ "$push_rc" -eq 0 ] || { cat "$T/big-push.log"; return 1; }; }
check "docker push through the proxy succeeds after its retry (exit $push_rc)" pushed_despite_kill
if [ "$KILLED" = A ]; then UP_HOST=$B_HOST; else UP_HOST=$A_HOST; fi
check "docker rmi the large image" forget_local "$LB/rep/big:v1"
check "docker pull of the large image through the surviving replica" timeout 300 docker pull "$UP_HOST/rep/big:v1"
check "docker run --network none of it prints ok" runs_ok "$UP_HOST/rep/big:v1"
docker rmi "$UP_HOST/rep/big:v1" >/dev/null 2>&1 || true
[ -z "$KILLED" ] || start_replica "$KILLED" "$PG_URL"
check "replica $KILLED started again serves the same digest" same_digest_both rep/big v1

# ---- 20 concurrent pushes of one tag, split across both replicas ------------------------
# Twenty different small images, all pushed as rep/race:latest at once, even
# ones through A, odd ones through B: every push succeeds, and afterwards both
# replicas agree on one of them, whose blobs are all there.
RACE_DIGESTS=()
for i in $(seq 0 19); do
  mkdir -p "$T/race-src/etc" && echo "race $i" >"$T/race-src/etc/mark"
  tar -C "$T/race-src" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$T/race-$i.tar" etc
  read -r -a m <<<"$(oci_image "$T/race$i" "$HOST_ARCH" "$T/race-$i.tar")"
  oci_ref "$T/race$i" latest "$OCI_MANIFEST" "${m[0]}" "${m[1]}"
  RACE_DIGESTS+=("${m[0]}")
done
race_pids=()
for i in $(seq 0 19); do
  if ((i % 2 == 0)); then dest=$A_HOST; else dest=$B_HOST; fi
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/race$i:latest" \
    "docker://$dest/rep/race:latest" >"$T/race-$i.log" 2>&1 &
  race_pids+=($!)
done
race_failed=0
for i in $(seq 0 19); do wait "${race_pids[i]}" || { race_failed=$((race_failed + 1)); tail -n 3 "$T/race-$i.log"; }; done
check "20 concurrent skopeo pushes of rep/race:latest (10 through A, 10 through B) all succeed" expect_eq 0 "$race_failed"
check "rep/race:latest resolves to the same digest through A and B" same_digest_both rep/race latest
RACE_WINNER=$(digest_at "$A_REG" rep/race latest)
one_of_pushed() { printf '%s\n' "${RACE_DIGESTS[@]}" | grep -qxF "$RACE_WINNER"; }
check "that digest is one of the 20 pushed" one_of_pushed
# consistent_at REG: what an fsck would check, through the API: the tag list,
# every pushed manifest by digest, and the winner's config and layers, each
# blob's bytes hashing to its digest.
consistent_at() {
  local reg=$1 d body
  expect_eq '{"name":"rep/race","tags":["latest"]}' "$(REG=$reg api rep/race/tags/list)" || return 1
  for d in "${RACE_DIGESTS[@]}"; do
    expect_eq 200 "$(http_status -I -H "Accept: $ACCEPT_MANIFESTS" "http://$reg/v2/rep/race/manifests/$d")" || return 1
  done
  body=$(REG=$reg manifest_body rep/race "$RACE_WINNER") || return 1
  expect_eq "$RACE_WINNER" "sha256:$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)" || return 1
  for d in $(jq -r '.config.digest, .layers[].digest' <<<"$body"); do
    expect_eq "$d" "$(blob_sha_at "$reg" rep/race "$d")" || return 1
  done
}
check "through A: one tag, all 20 manifests, the winner's blobs intact" consistent_at "$A_REG"
check "through B: one tag, all 20 manifests, the winner's blobs intact" consistent_at "$B_REG"
catalogs_agree() { expect_eq "$(REG=$A_REG api _catalog)" "$(REG=$B_REG api _catalog)"; }
check "_catalog is the same through A and B" catalogs_agree

# ---- a three-node Garage cluster with one node stopped ----------------------------------
start_garage_cluster "$T/garage3" 3
start_replica C "$(pg_database berth_cluster)"
make_rootfs_tar "$T/rootfs-c1.tar" before
make_rootfs_tar "$T/rootfs-c2.tar" during
# import_push TAR REF: docker import TAR as REF, then push it.
import_push() { timeout 120 docker import "$1" "$2" >/dev/null && timeout 300 docker push "$2"; }
check "docker push to berth on the 3-node cluster" import_push "$T/rootfs-c1.tar" "$C_HOST/cl/before:v1"
stop_garage_node "${GARAGE_NODES[2]}"
node3_down() { ! kill -0 "$(cat "${GARAGE_NODES[2]}/pid")" 2>/dev/null; }
check "garage node 3 is stopped (by its PID)" node3_down
check "docker push with node 3 down" import_push "$T/rootfs-c2.tar" "$C_HOST/cl/during:v1"
check "skopeo push with node 3 down" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/layout:v1" "docker://$C_HOST/cl/sko:v1"
check "docker rmi both" forget_local "$C_HOST/cl/before:v1" "$C_HOST/cl/during:v1"
check "docker pull (pushed before the stop) with node 3 down" timeout 300 docker pull "$C_HOST/cl/before:v1"
check "docker pull (pushed during the stop) with node 3 down" timeout 300 docker pull "$C_HOST/cl/during:v1"
check "docker run of it prints ok" runs_ok "$C_HOST/cl/during:v1"
skopeo_pull_c() {
  skopeo_ copy --src-tls-verify=false "docker://$C_HOST/cl/sko:v1" "oci:$T/back-$1:v1" >/dev/null &&
    expect_eq "$SKOPEO_DIGEST" "$(jq -r '.manifests[0].digest' "$T/back-$1/index.json")"
}
check "skopeo pull with node 3 down" skopeo_pull_c down
# Not inside `check`: its subshell would lose the restarted node's PID,
# and the node would outlive the script.
rejoined=0
start_garage_node "${GARAGE_NODES[2]}" >"$T/node3-restart.log" 2>&1 || rejoined=$?
check "garage node 3 started again rejoins" sh -c "[ $rejoined -eq 0 ] || { cat '$T/node3-restart.log'; exit 1; }"
check "skopeo pull with all three nodes up" skopeo_pull_c up
