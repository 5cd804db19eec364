#!/usr/bin/env bash
# The node side of `berth kind up`, the way a kubelet uses it: a real containerd
# with its CRI plugin on, configured as berth configures KinD nodes (certs.d +
# the hosts.toml `berth kind config` prints), driven over the CRI gRPC API by a
# small Python client (tests/clients/cri/): PullImage/ImageStatus as for
# `kubectl run --image=localhost:5999/busybox`, then a host-network pod sandbox
# whose pause image also comes from berth, and one container run to completion.
# The same berth caches a second registry (`berth kind up --mirror`): an image
# named up.test/... pulled through certs.d/up.test/hosts.toml lands in berth's
# cache, while localhost:PORT/... stays berth's own.
# Then a second berth with auth on (--htpasswd), pulled from as a kubelet does:
# with an imagePullSecret's credentials in the request, and with none but the
# node credentials `berth kind up --auth` patches into containerd's config.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
CRI_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/cri" && pwd)

# The registry name in image references, as on a KinD node. Nothing listens on
# it: only the hosts.toml route can turn it into berth's real address.
NODE_PORT=5999
NODE_REG=localhost:$NODE_PORT
CRI_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/cri-venv

# ---- the CRI client -------------------------------------------------------------

# cri_venv: grpcio + grpcio-tools in a venv outside the repo, made once and reused.
cri_venv() {
  "$CRI_VENV/bin/python" -c 'import grpc, grpc_tools' 2>/dev/null && return 0
  python3 -m venv "$CRI_VENV" &&
    "$CRI_VENV/bin/pip" install -q --disable-pip-version-check grpcio grpcio-tools &&
    "$CRI_VENV/bin/python" -c 'import grpc, grpc_tools'
}

# compile_cri_proto: the test's CRI subset → Python stubs in $T/cri-py.
compile_cri_proto() {
  mkdir -p "$T/cri-py" &&
    "$CRI_VENV/bin/python" -m grpc_tools.protoc -I "$CRI_DIR" \
      --python_out="$T/cri-py" --grpc_python_out="$T/cri-py" "$CRI_DIR/cri_subset.proto"
}

# cri COMMAND ARGS...: one CRI call against our containerd; JSON on stdout.
cri() { PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$T/cri-py timeout 300 "$CRI_VENV/bin/python" "$CRI_DIR/cri_client.py" "$CTD_SOCK" "$@"; }

# ---- containerd with the CRI plugin ---------------------------------------------

# start_cri_containerd: containerd as on a KinD node, every path under $T.
# What this sandbox needs beyond `berth kind up`'s config_path patch:
#  - restrict_oom_score_adj: without CAP_SYS_RESOURCE runc cannot give the pause
#    container the kubelet's -998, and RunPodSandbox fails with "runc create
#    failed: ... can't get final child's PID from pipe: EOF";
#  - an empty CNI conf dir: only host-network pods are started, which skip CNI;
#  - sandbox_image from berth: no image can be pulled from the internet.
# (No AppArmor in this kernel: containerd leaves it off by itself.)
start_cri_containerd() {
  CTD_SOCK=$T/ctd.sock
  mkdir -p "$T/cni-conf" "$T/cni-bin"
  cat >"$T/containerd.toml" <<EOF
version = 2
root = "$T/ctd-root"
state = "$T/ctd-state"
[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$CTD_SOCK.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_REG/pause:3.9"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "${CRI_SNAPSHOTTER:-overlayfs}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$T/cni-bin"
    conf_dir = "$T/cni-conf"
# What berth kind up --auth patches into every node's containerd config
# (config_path, credentials for the auth berth), certs.d moved under \$T.
$(sed "s#\"/etc/containerd/certs.d\"#\"$T/certs.d\"#" "$T/containerd-patch.toml")
EOF
  containerd --config "$T/containerd.toml" --address "$CTD_SOCK" \
    --root "$T/ctd-root" --state "$T/ctd-state" >"$T/containerd.log" 2>&1 &
  track containerd $!
  if ! wait_for 60 cri version; then
    echo "containerd's CRI plugin did not answer within 60 s; its log:" >&2
    grep -iE 'level=(error|fatal)|cri' "$T/containerd.log" | tail -n 30 >&2
    return 1
  fi
  echo "# containerd (CRI) pid $! on $CTD_SOCK"
}

# ---- the node's registry configuration ------------------------------------------

# hosts_toml: the hosts.toml for $NODE_REG that routes to berth, from berth itself.
hosts_toml() {
  "$BERTH_BIN" kind config --only hosts-toml --port "$NODE_PORT" --endpoint "http://$REG"
}

# write_hosts_for HOST ENDPOINT: certs.d/HOST/hosts.toml sending HOST's pulls to ENDPOINT.
write_hosts_for() {
  mkdir -p "$T/certs.d/$1" &&
    "$BERTH_BIN" kind config --only hosts-toml --endpoint "$2" >"$T/certs.d/$1/hosts.toml"
}

# ---- images ---------------------------------------------------------------------

# make_pause_layout LAYOUT TAG: a busybox-based pod sandbox ("pause") image whose
# entrypoint sleeps; sets PAUSE_DIGEST.
make_pause_layout() {
  local work diff_id layer config manifest
  work=$(mktemp -d "$T/pause.XXXXXX")
  make_rootfs_tar "$work/rootfs.tar" pause
  diff_id=sha256:$(sha256sum "$work/rootfs.tar" | cut -d' ' -f1)
  gzip -n -c "$work/rootfs.tar" >"$work/layer.tar.gz"
  read -r -a layer <<<"$(oci_blob "$1" "$work/layer.tar.gz")"
  printf '{"architecture":"%s","os":"linux","config":{"Entrypoint":["/bin/busybox","sleep","2147483647"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$HOST_ARCH" "$diff_id" >"$work/config.json"
  read -r -a config <<<"$(oci_blob "$1" "$work/config.json")"
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "$OCI_MANIFEST" "${config[0]}" "${config[1]}" "${layer[0]}" "${layer[1]}" >"$work/manifest.json"
  read -r -a manifest <<<"$(oci_blob "$1" "$work/manifest.json")"
  oci_ref "$1" "$2" "$OCI_MANIFEST" "${manifest[0]}" "${manifest[1]}"
  PAUSE_DIGEST=${manifest[0]}
}

# make_index_layout LAYOUT TAG: an OCI image index with a child for this node's
# architecture and one for another; sets INDEX_DIGEST, NODE_CHILD, OTHER_CHILD.
make_index_layout() {
  local other arch m children=() index
  other=arm64; [ "$HOST_ARCH" != arm64 ] || other=amd64
  for arch in "$HOST_ARCH" "$other"; do
    make_rootfs_tar "$T/rootfs-$arch.tar" "index child $arch"
    read -r -a m <<<"$(oci_image "$1" "$arch" "$T/rootfs-$arch.tar")"
    children+=("$(printf '{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}' \
      "$OCI_MANIFEST" "${m[0]}" "${m[1]}" "$arch")")
    if [ "$arch" = "$HOST_ARCH" ]; then NODE_CHILD=${m[0]}; else OTHER_CHILD=${m[0]}; fi
  done
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s,%s]}' "$OCI_INDEX" "${children[0]}" "${children[1]}" >"$T/index.json"
  read -r -a index <<<"$(oci_blob "$1" "$T/index.json")"
  oci_ref "$1" "$2" "$OCI_INDEX" "${index[0]}" "${index[1]}"
  INDEX_DIGEST=${index[0]}
}

# ---- teardown ------------------------------------------------------------------

# cri_teardown: a pod left behind by a failed step is removed (with its
# containers and shims) while containerd still runs; lib.sh's cleanup follows.
cri_teardown() {
  local task
  [ -S "${CTD_SOCK:-}" ] || return 0
  if [ -n "${POD_ID:-}" ]; then
    cri stop-pod "$POD_ID" >/dev/null 2>&1
    cri remove-pod "$POD_ID" >/dev/null 2>&1
  fi
  # Anything still running under our containerd (a pod whose id was never
  # read back): kill and delete it through containerd, so no shim outlives it.
  for task in $(timeout 30 ctr --address "$CTD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    echo "# removing leftover CRI task $task" >&2
    timeout 30 ctr --address "$CTD_SOCK" -n k8s.io tasks rm -f "$task" >/dev/null 2>&1
  done
}
trap 'rc=$?; set +e; cri_teardown; (exit "$rc"); cleanup' EXIT

# ---- setup ------------------------------------------------------------------------

check "CRI client: grpcio + grpcio-tools in $CRI_VENV" cri_venv
check "CRI client: the test's runtime.v1 proto compiles" compile_cri_proto
[ "$FAILED" -eq 0 ] || exit 1

# berth here is also the nodes' cache of a registry the images name up.test:
# a second, plain berth on loopback (the upstream), configured with the
# [[upstream]] `berth kind config --mirror up.test=URL --only berth-config`
# prints, as `berth kind up --mirror` configures the registry container.
MIRRORED=up.test
UPORT=$(free_port)
UREG=127.0.0.1:$UPORT
"$BERTH_BIN" serve --addr "$UREG" --data-dir "$T/upstream-data" >"$T/upstream.log" 2>&1 &
track upstream-berth $!
check "the upstream (a plain berth) answers on $UREG" \
  wait_for 30 bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" "http://$1/v2/")" = 200 ]' _ "$UREG"
mirror_config() {
  "$BERTH_BIN" kind config --only berth-config --mirror "$MIRRORED=http://$UREG" >"$T/berth-mirror.toml" &&
    grep -qxF "name = \"$MIRRORED\"" "$T/berth-mirror.toml" && grep -qxF "url = \"http://$UREG\"" "$T/berth-mirror.toml"
}
check "berth kind config --mirror $MIRRORED=http://UREG --only berth-config: an [[upstream]] for it" mirror_config
BERTH_CONFIG=$T/berth-mirror.toml start_berth
make_busybox_layout "$T/busybox" latest
make_pause_layout "$T/pause" 3.9
check "push busybox:latest into berth (skopeo from an OCI layout)" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/busybox:latest" "docker://$HOSTREG/busybox:latest"
check "push pause:3.9 (busybox-based, sleeps) into berth" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/pause:3.9" "docker://$HOSTREG/pause:3.9"
BUSYBOX_DIGEST=$(manifest_digest busybox latest)
BUSYBOX_CONFIG=$(manifest_body busybox latest | jq -r .config.digest)
check "berth serves busybox:latest with the pushed digest" expect_eq "$IMG_DIGEST" "$BUSYBOX_DIGEST"

mkdir -p "$T/certs.d/$NODE_REG"
write_hosts_toml() { hosts_toml >"$T/certs.d/$NODE_REG/hosts.toml"; }
check "$NODE_REG/hosts.toml from berth kind config --only hosts-toml" write_hosts_toml
hosts_toml_shape() {
  grep -qx "server = \"http://$REG\"" "$T/certs.d/$NODE_REG/hosts.toml" &&
    grep -qF "[host.\"http://$REG\"]" "$T/certs.d/$NODE_REG/hosts.toml"
}
check "hosts.toml for $NODE_REG: server and host http://$REG" hosts_toml_shape
nothing_on_node_port() { ! (exec 3<>"/dev/tcp/127.0.0.1/$NODE_PORT") 2>/dev/null; }
check "nothing listens on $NODE_REG, so only hosts.toml can route a pull to berth" nothing_on_node_port

# ---- a second berth, with auth on -------------------------------------------------
# Three names reach it: 127.0.0.1:APORT directly (the image's host is the
# server's), and two mirrors whose host differs from the image's, as on a KinD
# node: localhost:5997 -> http://localhost:APORT, whose host has the node
# credentials of `berth kind config --auth`, and localhost:5996 ->
# http://127.0.0.1:APORT, whose host has none.
export XDG_STATE_HOME=$T/state
AUTH_MIRROR=localhost:5997 BARE_MIRROR=localhost:5996

# start_auth_berth: berth --htpasswd on $APORT, ready once /v2/ asks for credentials.
start_auth_berth() {
  local deadline
  "$BERTH_BIN" serve --addr "127.0.0.1:$APORT" --data-dir "$T/auth-data" --htpasswd "$T/htpasswd" >"$T/auth-berth.log" 2>&1 &
  track auth-berth $!
  deadline=$((SECONDS + 30))
  until [ "$(http_status "http://127.0.0.1:$APORT/v2/")" = 401 ]; do
    [ "$SECONDS" -lt "$deadline" ] && kill -0 "$!" 2>/dev/null || { sed 's/^/    /' "$T/auth-berth.log"; return 1; }
    sleep 0.2
  done
  echo "# auth berth pid $! on 127.0.0.1:$APORT"
}
# The port is picked before the config that names it; the user is added to
# htpasswd from the password kind config saved, before berth starts.
APORT=$(free_port)
kind_patch() {
  "$BERTH_BIN" kind config --auth --registry-name cri-registry --endpoint "http://localhost:$APORT" \
    --only containerd-patch >"$T/containerd-patch.toml" &&
    AUTH_PW=$(cat "$T/state/berth/kind/cri-registry-kind.password") &&
    grep -qF "[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"localhost:$APORT\".auth]" "$T/containerd-patch.toml" &&
    grep -qF "password = \"$AUTH_PW\"" "$T/containerd-patch.toml"
}
check "berth kind config --auth --only containerd-patch: credentials for localhost:APORT, password saved" kind_patch
AUTH_PW=$(cat "$T/state/berth/kind/cri-registry-kind.password" 2>/dev/null || true)
add_kind_user() { printf '%s\n' "$AUTH_PW" | "$BERTH_BIN" user add kind --htpasswd "$T/htpasswd" --password-stdin; }
check "berth user add kind (the saved password) --htpasswd" add_kind_user
start_auth_berth
AREG=127.0.0.1:$APORT
check "push busybox:latest into the auth berth (skopeo --dest-creds)" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false --dest-creds "kind:$AUTH_PW" "oci:$T/busybox:latest" "docker://$AREG/busybox:latest"
check "hosts.toml for $AREG: straight to itself" write_hosts_for "$AREG" "http://$AREG"
check "hosts.toml for $AUTH_MIRROR: to http://localhost:$APORT" write_hosts_for "$AUTH_MIRROR" "http://localhost:$APORT"
check "hosts.toml for $BARE_MIRROR: to http://$AREG" write_hosts_for "$BARE_MIRROR" "http://$AREG"

start_cri_containerd

# ---- ImageService: what the kubelet does for `kubectl run --image=...` ---------------

IMG=$NODE_REG/busybox:latest
pull_tag() { cri pull "$IMG" >"$T/pull.json"; }
check "CRI PullImage $IMG (routed by hosts.toml to $REG)" pull_tag

# image_status_matches REF: ImageStatus knows REF, its id is the config berth
# served and its repo digests name the manifest digest berth served.
image_status_matches() {
  local st
  st=$(cri image-status "$1") &&
    expect_eq "$BUSYBOX_CONFIG" "$(jq -r .image.id <<<"$st")" &&
    expect_eq "$NODE_REG/busybox@$BUSYBOX_DIGEST" "$(jq -r '.image.repo_digests[]' <<<"$st")"
}
check "CRI ImageStatus: repo digest = berth's Docker-Content-Digest, id = its config" image_status_matches "$IMG"
check "PullImage's image_ref is that image id" expect_eq "$BUSYBOX_CONFIG" "$(jq -r .image_ref "$T/pull.json" 2>/dev/null)"
check "ImageStatus lists the tag $IMG" \
  expect_eq "$IMG" "$(cri image-status "$IMG" | jq -r '.image.repo_tags[]')"

# A missing tag fails promptly with an error naming it (the kubelet's ErrImagePull).
# containerd tries every [host] of hosts.toml and then the `server` as a last
# resort, and reports the last failure; berth's hosts.toml names berth as the
# server too, so the error says what happened: not found.
pull_missing() {  # pull_missing REF ERROR_TEXT
  local start=$SECONDS rc=0
  cri pull "$1" >/dev/null 2>"$T/missing.err" || rc=$?
  [ "$rc" -eq 2 ] || { echo "exit $rc (want 2, a gRPC error)"; cat "$T/missing.err"; return 1; }
  grep -qF "$2" "$T/missing.err" || { echo "error does not say '$2':"; cat "$T/missing.err"; return 1; }
  [ $((SECONDS - start)) -lt 60 ] || { echo "took $((SECONDS - start)) s"; return 1; }
}
check "CRI PullImage of a missing tag fails within 60 s, naming the reference and 'not found'" \
  pull_missing "$NODE_REG/busybox:no-such-tag" "failed to resolve reference \"$NODE_REG/busybox:no-such-tag\": $NODE_REG/busybox:no-such-tag: not found"
# Why server names berth: with server = "http://localhost:5998", where nothing
# listens (as inside a KinD node), the same pull reports "connection refused".
mkdir -p "$T/certs.d/localhost:5998"
printf 'server = "http://localhost:5998"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$REG" \
  >"$T/certs.d/localhost:5998/hosts.toml"
check "same missing tag with server = the node's own localhost: 'connection refused'" \
  pull_missing "localhost:5998/busybox:no-such-tag" "connection refused"

# By digest: forget the image, then pull it back by the digest berth served.
check "CRI RemoveImage $IMG" cri remove-image "$IMG"
image_gone() { expect_eq null "$(cri image-status "$IMG" | jq -c .image)"; }
check "ImageStatus after RemoveImage: no image" image_gone
BY_DIGEST=$NODE_REG/busybox@$BUSYBOX_DIGEST
check "CRI PullImage by digest $BY_DIGEST" cri pull "$BY_DIGEST"
check "ImageStatus by digest: repo digest and id match berth" image_status_matches "$BY_DIGEST"
check "pull busybox:latest again for the pod" cri pull "$IMG"

# ---- pull-through: an image of up.test through berth's cache --------------------
# The node's certs.d/up.test/hosts.toml (from `berth kind config --mirror`)
# names berth as the host to pull from; containerd adds ?ns=up.test, which
# berth maps to its upstream. Its `server` is the upstream itself (containerd's
# fallback), so that the pull worked proves nothing: berth holding the
# repository and its blobs does.

# make_marked_layout LAYOUT TAG MARK: an image whose layer holds MARK (so its
# blobs are new to containerd); sets MARKED_DIGEST.
make_marked_layout() {
  local m
  make_rootfs_tar "$T/rootfs-$3.tar" "$3"
  read -r -a m <<<"$(oci_image "$1" "$HOST_ARCH" "$T/rootfs-$3.tar")"
  oci_ref "$1" "$2" "$OCI_MANIFEST" "${m[0]}" "${m[1]}"
  MARKED_DIGEST=${m[0]}
}
make_marked_layout "$T/upapp" v1 upstream-app
UPAPP_DIGEST=$MARKED_DIGEST
check "push team/app:v1 into the upstream $UREG" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/upapp:v1" "docker://$UREG/team/app:v1"
mirror_hosts() {
  mkdir -p "$T/certs.d/$MIRRORED" &&
    "$BERTH_BIN" kind config --only mirror-hosts-toml --mirror "$MIRRORED=http://$UREG" --endpoint "http://$REG" \
      >"$T/certs.d/$MIRRORED/hosts.toml" &&
    grep -qx "server = \"http://$UREG\"" "$T/certs.d/$MIRRORED/hosts.toml" &&
    grep -qF "[host.\"http://$REG\"]" "$T/certs.d/$MIRRORED/hosts.toml"
}
check "certs.d/$MIRRORED/hosts.toml from berth kind config --only mirror-hosts-toml: berth first, server the upstream" mirror_hosts
UPAPP=$MIRRORED/team/app:v1
check "CRI PullImage $UPAPP" cri pull "$UPAPP"
upapp_status() {
  expect_eq "$MIRRORED/team/app@$UPAPP_DIGEST" "$(cri image-status "$UPAPP" | jq -r '.image.repo_digests[]')"
}
check "ImageStatus: the image is in containerd with the upstream's digest" upapp_status
check "berth now holds the repository $MIRRORED/team/app (cached under the upstream's name)" \
  expect_eq "{\"name\":\"$MIRRORED/team/app\",\"tags\":[\"v1\"]}" "$(api "$MIRRORED/team/app/tags/list")"
# cache_says URL: the Berth-Cache header of a GET.
cache_says() {
  curl -sS --max-time 30 -o /dev/null -D - -H "Accept: $ACCEPT_MANIFESTS" "$1" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "berth-cache" {print $2}'
}
check "a second manifest GET (as containerd sends it, ?ns=$MIRRORED) is a cache hit" \
  expect_eq hit "$(cache_says "http://$REG/v2/team/app/manifests/v1?ns=$MIRRORED")"
upapp_layer_cached() {
  local layer
  layer=$(curl -sS --max-time 30 -H "Accept: $ACCEPT_MANIFESTS" "http://$UREG/v2/team/app/manifests/v1" | layer_digests) &&
    [ -n "$layer" ] && expect_eq hit "$(cache_says "http://$REG/v2/$MIRRORED/team/app/blobs/$layer")"
}
check "containerd fetched the layer through berth: berth has it cached (Berth-Cache: hit)" upapp_layer_cached
# The same containerd, the same berth: the cluster's own registry stays local.
make_marked_layout "$T/private" v1 private-app
PRIVATE_DIGEST=$MARKED_DIGEST
check "push private/app:v1 into berth" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/private:v1" "docker://$HOSTREG/private/app:v1"
# The upstream has no private/app: a pull routed there would fail.
check "CRI PullImage $NODE_REG/private/app:v1 (?ns=$NODE_REG: no upstream's name)" cri pull "$NODE_REG/private/app:v1"
private_status() {
  expect_eq "$NODE_REG/private/app@$PRIVATE_DIGEST" "$(cri image-status "$NODE_REG/private/app:v1" | jq -r '.image.repo_digests[]')"
}
check "ImageStatus: berth's pushed digest" private_status
check "private/app is served as a local repository (no Berth-Cache header)" \
  expect_eq "" "$(cache_says "http://$REG/v2/private/app/manifests/v1?ns=$NODE_REG")"

# What `docker push` stores: Docker's schema 2 media types, not OCI's.
DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
check "push dockerfmt:latest in Docker schema 2 format (skopeo --format v2s2)" \
  skopeo_ copy --format v2s2 --dest-tls-verify=false "oci:$T/busybox:latest" "docker://$HOSTREG/dockerfmt:latest"
served_type() {
  curl -sS --max-time 30 -I -H "Accept: $ACCEPT_MANIFESTS" "http://$REG/v2/$1/manifests/$2" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "content-type" {print $2}'
}
check "berth serves dockerfmt:latest as $DOCKER_MANIFEST" expect_eq "$DOCKER_MANIFEST" "$(served_type dockerfmt latest)"
check "CRI PullImage $NODE_REG/dockerfmt:latest" cri pull "$NODE_REG/dockerfmt:latest"
# Same config as busybox, so containerd files both under one image id, whose
# repo digests then name both manifests.
docker_format_status() {
  local want digests
  want=$NODE_REG/dockerfmt@$(manifest_digest dockerfmt latest) &&
    digests=$(cri image-status "$NODE_REG/dockerfmt:latest" | jq -r '.image.repo_digests[]') &&
    { grep -qxF "$want" <<<"$digests" || { printf 'want %s among:\n%s\n' "$want" "$digests"; return 1; }; }
}
check "ImageStatus: repo digest = berth's digest for the Docker-format manifest" docker_format_status

# A multi-arch image, as most pushed images are: the node resolves the index
# berth serves and fetches only its own platform's manifest and layer.
make_index_layout "$T/multi" latest
check "push multi:latest, an index for $HOST_ARCH and another arch (skopeo --all)" \
  skopeo_ copy --all --preserve-digests --dest-tls-verify=false "oci:$T/multi:latest" "docker://$HOSTREG/multi:latest"
check "berth serves multi:latest as the pushed index" expect_eq "$INDEX_DIGEST" "$(manifest_digest multi latest)"
check "CRI PullImage $NODE_REG/multi:latest" cri pull "$NODE_REG/multi:latest"
index_status() {
  local st
  st=$(cri image-status "$NODE_REG/multi:latest") &&
    expect_eq "$NODE_REG/multi@$INDEX_DIGEST" "$(jq -r '.image.repo_digests[]' <<<"$st")" &&
    expect_eq "$(manifest_body multi "$NODE_CHILD" | jq -r .config.digest)" "$(jq -r .image.id <<<"$st")"
}
check "ImageStatus: repo digest = the index digest, id = the $HOST_ARCH child's config" index_status
only_node_platform() {
  local have mine theirs
  mine=$(manifest_body multi "$NODE_CHILD" | layer_digests) && [ -n "$mine" ] &&
    theirs=$(manifest_body multi "$OTHER_CHILD" | layer_digests) && [ -n "$theirs" ] &&
    have=$(timeout 60 ctr --address "$CTD_SOCK" -n k8s.io content ls -q) &&
    { grep -qx "$mine" <<<"$have" || { echo "missing $mine"; return 1; }; } &&
    { ! grep -qx "$theirs" <<<"$have" || { echo "fetched $theirs too"; return 1; }; }
}
check "containerd fetched the $HOST_ARCH layer and not the other platform's" only_node_platform

# ---- RuntimeService: a host-network pod whose container runs the pulled image -----

POD_NAME=berth-cri-test
LOG_DIR=$T/pods/$POD_NAME
mkdir -p "$LOG_DIR"
# check runs its command in a subshell: ids travel through files.
run_pod() { cri run-pod "$POD_NAME" "$LOG_DIR" >"$T/pod.json" && jq -e .pod_sandbox_id "$T/pod.json"; }
check "CRI RunPodSandbox (network NODE), sandbox image $NODE_REG/pause:3.9 from berth" run_pod
POD_ID=$(jq -r '.pod_sandbox_id // empty' "$T/pod.json" 2>/dev/null || true)
pause_pulled() {
  expect_eq "$NODE_REG/pause@$PAUSE_DIGEST" "$(cri image-status "$NODE_REG/pause:3.9" | jq -r '.image.repo_digests[]')"
}
check "the sandbox image containerd pulled is berth's pause:3.9 digest" pause_pulled
pod_ready() { expect_eq SANDBOX_READY "$(cri pod-status "$POD_ID" | jq -r .status.state)"; }
check "PodSandboxStatus: SANDBOX_READY" pod_ready

create_ctr() {
  cri create-container "$POD_ID" "$POD_NAME" "$LOG_DIR" "$IMG" echo /bin/echo hello from berth >"$T/ctr.json" &&
    jq -e .container_id "$T/ctr.json"
}
check "CRI CreateContainer from $IMG running /bin/echo" create_ctr
CTR_ID=$(jq -r '.container_id // empty' "$T/ctr.json" 2>/dev/null || true)
check "CRI StartContainer" cri start-container "$CTR_ID"
exited_ok() {
  local st
  st=$(cri wait-exited "$CTR_ID" 60) &&
    expect_eq "CONTAINER_EXITED 0" "$(jq -r '"\(.status.state) \(.status.exit_code)"' <<<"$st")" &&
    expect_eq "$NODE_REG/busybox@$BUSYBOX_DIGEST" "$(jq -r .status.image_ref <<<"$st")"
}
check "ContainerStatus: exited 0, image_ref = berth's digest" exited_ok
# CRI log lines: "<RFC3339 time> stdout F <text>".
log_says_hello() { grep -E '^[^ ]+ stdout F hello from berth$' "$LOG_DIR/echo/0.log"; }
check "container log $LOG_DIR/echo/0.log: 'hello from berth' on stdout" log_says_hello

check "CRI StopContainer" cri stop-container "$CTR_ID"
check "CRI RemoveContainer" cri remove-container "$CTR_ID"
check "CRI StopPodSandbox" cri stop-pod "$POD_ID"
check "CRI RemovePodSandbox" cri remove-pod "$POD_ID"

# ---- pulls from berth with auth on, as the kubelet makes them ----------------------
# Every PullImage below first removes the image: a pull must resolve the
# manifest at berth again, which needs credentials.

# pull_refused REF [USER PASSWORD [SERVER_ADDRESS]]: PullImage fails with a gRPC
# error that says berth answered 401 (or, with a password given, 429: the
# address has failed too many logins).
pull_refused() {
  local rc=0
  cri remove-image "$1" >/dev/null 2>&1 || true
  cri pull "$@" >/dev/null 2>"$T/refused.err" || rc=$?
  [ "$rc" -eq 2 ] || { echo "exit $rc (want 2, a gRPC error)"; cat "$T/refused.err"; return 1; }
  local refused='401 Unauthorized'
  [ $# -lt 3 ] || refused='401 Unauthorized|429 Too Many Requests'
  grep -qE "$refused" "$T/refused.err" || { echo "error does not say $refused:"; cat "$T/refused.err"; return 1; }
}
# pulled REF [USER PASSWORD [SERVER_ADDRESS]]: PullImage succeeds and ImageStatus
# names berth's manifest digest under REF's repository.
pulled() {
  local ref=$1
  cri remove-image "$ref" >/dev/null 2>&1 || true
  cri pull "$@" >/dev/null &&
    expect_eq "${ref%:*}@$BUSYBOX_DIGEST" "$(cri image-status "$ref" | jq -r '.image.repo_digests[]' | grep -F "${ref%:*}@")"
}

# (c) No credentials anywhere: refused.
check "auth (c): PullImage $AREG/busybox, no credentials in the request or on the node: 401" \
  pull_refused "$AREG/busybox:latest"
check "auth (c): PullImage via mirror $BARE_MIRROR (no node credentials for $AREG): 401" \
  pull_refused "$BARE_MIRROR/busybox:latest"
# (a) The request's credentials, as the kubelet passes an imagePullSecret: user
# and password, no server_address (the kubelet's keyring sets none).
check "auth (a): PullImage $AREG/busybox with auth {kind, password} as the kubelet sends it" \
  pulled "$AREG/busybox:latest" kind "$AUTH_PW"
# (a) through a mirror whose host differs from the image's, as on a KinD node
# (localhost:PORT -> the registry container). containerd 1.6 gives a request's
# credentials that name no server to every host it tries, the mirror too.
check "auth (a) via mirror $BARE_MIRROR, kubelet-style (no server_address): containerd 1.6 sends them to the mirror, pulled" \
  pulled "$BARE_MIRROR/busybox:latest" kind "$AUTH_PW"
# With a server_address, containerd gives them only to that host: the image's
# registry, not the mirror (how credentials stay pinned to the image's host,
# containerd#10996).
check "auth (a) via mirror $BARE_MIRROR with server_address http://$BARE_MIRROR: the mirror gets none, 401" \
  pull_refused "$BARE_MIRROR/busybox:latest" kind "$AUTH_PW" "http://$BARE_MIRROR"
check "auth (a) direct with server_address http://$AREG: pulled" \
  pulled "$AREG/busybox:latest" kind "$AUTH_PW" "http://$AREG"
# (b) What berth kind up --auth configures: credentials for the mirror's host in
# containerd's registry.configs, hosts.toml from localhost:PORT to that host.
check "auth (b): PullImage $AUTH_MIRROR/busybox with no request credentials: node credentials for localhost:$APORT used" \
  pulled "$AUTH_MIRROR/busybox:latest"
check "auth (b) plus a pull secret with the right password: pulled" \
  pulled "$AUTH_MIRROR/busybox:latest" kind "$AUTH_PW"
# Wrong passwords last: containerd retries each refused request, so one such
# pull is already more than the 10 failed logins berth allows an address per
# minute, and every pull from that address then gets 429 for a while.
# A pull secret on top of the node credentials: the request's credentials
# replace the node's (a stale secret breaks pulls that work without it).
check "auth (b) plus a pull secret with a wrong password: the request's credentials win, refused" \
  pull_refused "$AUTH_MIRROR/busybox:latest" kind "wrong-$AUTH_PW"
check "auth (a) with a wrong password: refused (401, or 429 once the address has failed 10 logins)" \
  pull_refused "$AREG/busybox:latest" kind "wrong-$AUTH_PW"
# What that means for a node: after a stale secret's pulls, even the right
# credentials from that address are turned away until the window passes.
limited_after_failures() {
  cri pull "$AREG/busybox:latest" kind "$AUTH_PW" >/dev/null 2>"$T/limited.err" && { echo "pulled"; return 1; }
  grep -q '429 Too Many Requests' "$T/limited.err" || { cat "$T/limited.err"; return 1; }
}
check "after those failures the right password from the same address gets 429 too" limited_after_failures
auth_berth_log_clean() { ! grep -qF "$AUTH_PW" "$T/auth-berth.log"; }
check "the password is not in the auth berth's log" auth_berth_log_clean
