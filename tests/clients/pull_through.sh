#!/usr/bin/env bash
# The pull-through cache with real clients and real upstreams on loopback.
# Upstreams: reg.test = Debian's docker-registry (CNCF distribution 2.8.2)
# without auth, secure.test = docker-registry with htpasswd (Basic),
# berth.test = a second berth with token auth (Bearer). One berth in front
# with an [[upstream]] for each (and reg.test again as `docker.io`) and
# `[cache] freshness = "2s"`:
#  - docker, podman, skopeo pull through it by prefix; containerd through a
#    certs.d hosts.toml (the `?ns=reg.test` and `?ns=docker.io` forms), and
#    a private push pulled through the same containerd config stays local;
#    Docker Hub's `library/` names; an index with one platform pulled;
#  - a second pull asks no upstream for a blob (counted in the upstreams'
#    access logs) and answers `Berth-Cache: hit`;
#  - a tag moved upstream is seen after the 2 s freshness, not before;
#  - upstream stopped by PID: the cached tag is served `stale` with a
#    Warning and still pulls with docker; a never-cached image is an error;
#  - a blob upstream overwritten with other bytes: the pull fails, berth
#    keeps nothing, and caches the good bytes once the upstream is fixed;
#  - 20 concurrent pulls of one uncached image: one upstream GET per blob;
#  - eviction under `[cache] max_size`: the least recently pulled cached
#    image goes, a pushed one stays, the evicted one pulls again;
#  - docker and skopeo pushes into a cached repository refused (DENIED,
#    berth's message shown); no upstream password or token in berth's log.
# shellcheck disable=SC2317  # helpers are called by name through check
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for tool in docker dockerd podman skopeo ctr containerd docker-registry htpasswd jq curl; do
  command -v "$tool" >/dev/null || { echo "FAIL - $tool not found (bash tests/deps.sh installs it)"; exit 1; }
done
SCRIPT_START=$SECONDS

# note TEXT: a "# TEXT" line on the script's output even from inside a check
# (which keeps its command's output only for a failure).
exec 3>&1
note() { echo "# $*" >&3; }

podman_() {
  timeout 300 podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}
ctr_() { timeout 300 ctr --address "$CTD_SOCK" "$@"; }
new_password() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20; }


# ---- images ------------------------------------------------------------------

# make_layout NAME [PAYLOAD]: an OCI layout $T/oci-NAME (tag latest) of a
# distinct busybox image (etc/mark = NAME, plus PAYLOAD random bytes in
# data/random); sets DIGEST, LAYER, CONFIG and BYTES (manifest + config +
# layer) for NAME.
declare -A DIGEST LAYER CONFIG BYTES
make_layout() {
  local m manifest dir
  make_rootfs_tar "$T/$1.tar" "$1"
  if [ -n "${2:-}" ]; then
    dir=$(mktemp -d "$T/payload.XXXXXX") && mkdir -p "$dir/data" &&
      head -c "$2" /dev/urandom >"$dir/data/random" &&
      tar -C "$dir" --owner=0 --group=0 --numeric-owner -rf "$T/$1.tar" data
  fi
  read -r -a m <<<"$(oci_image "$T/oci-$1" "$HOST_ARCH" "$T/$1.tar")"
  oci_ref "$T/oci-$1" latest "$OCI_MANIFEST" "${m[0]}" "${m[1]}"
  manifest=$T/oci-$1/blobs/sha256/${m[0]#sha256:}
  DIGEST[$1]=${m[0]}
  LAYER[$1]=$(layer_digests <"$manifest")
  CONFIG[$1]=$(jq -r .config.digest <"$manifest")
  BYTES[$1]=$((m[1] + $(jq '.config.size + ([.layers[].size] | add)' <"$manifest")))
}
for name in secure berth fresh-x fresh-y bad e1 e2 e3 mine local hub; do make_layout "$name"; done
make_layout crowd $((32 << 20))  # big enough that the 20 pulls below overlap the one upstream fetch
make_layout gone $((16 << 20))   # a client leaves its pull of this one early
make_rootfs_tar "$T/app.tar" app

# make_multi_layout: $T/oci-multi (tag latest), an OCI index of amd64 and
# arm64 images; sets INDEX_DIGEST.
make_multi_layout() {
  local arch m entries=() idx
  for arch in amd64 arm64; do
    make_rootfs_tar "$T/multi-$arch.tar" "multi-$arch"
    read -r -a m <<<"$(oci_image "$T/oci-multi" "$arch" "$T/multi-$arch.tar")"
    entries+=("$(printf '{"mediaType":"%s","digest":"%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}' \
      "$OCI_MANIFEST" "${m[0]}" "${m[1]}" "$arch")")
  done
  printf '{"schemaVersion":2,"mediaType":"%s","manifests":[%s,%s]}' "$OCI_INDEX" "${entries[0]}" "${entries[1]}" >"$T/index.json"
  read -r -a idx <<<"$(oci_blob "$T/oci-multi" "$T/index.json")"
  oci_ref "$T/oci-multi" latest "$OCI_INDEX" "${idx[0]}" "${idx[1]}"
  INDEX_DIGEST=${idx[0]}
}
make_multi_layout

# pull_verify REF DIGEST [SKOPEO ARGS...]: skopeo copy docker://REF to a dir;
# the manifest hashes to DIGEST and every blob to its name (config + 1 layer).
pull_verify() {
  local ref=$1 digest=$2 d f n=0; shift 2
  d=$(mktemp -d "$T/pull.XXXXXX")
  skopeo_ copy --src-tls-verify=false "$@" "docker://$ref" "dir:$d" >/dev/null || return 1
  expect_eq "$digest" "sha256:$(sha256sum <"$d/manifest.json" | cut -d' ' -f1)" || return 1
  for f in "$d"/*; do
    case ${f##*/} in manifest.json | version) continue ;; esac
    expect_eq "${f##*/}" "$(sha256sum <"$f" | cut -d' ' -f1)" || return 1
    n=$((n + 1))
  done
  rm -rf "$d"
  expect_eq 2 "$n"
}

# ---- upstreams -----------------------------------------------------------------

# start_distribution NAME PORT [HTPASSWD]: docker-registry on 127.0.0.1:PORT,
# storage $T/NAME-data, log (access log included) appended to $T/NAME.log;
# sets DIST_PID[NAME]. Restarting on the same port and storage is allowed.
# Ready when /v2/ answers 200 (401 with HTPASSWD) and the process still runs
# (so another server on that port cannot pass for it).
declare -A DIST_PID
start_distribution() {
  local name=$1 port=$2 auth="" ready=200
  [ -z "${3:-}" ] || ready=401
  [ -z "${3:-}" ] || auth="auth:
  htpasswd:
    realm: $name
    path: $3"
  cat >"$T/$name.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $T/$name-data
http:
  addr: 127.0.0.1:$port
  secret: pull-through-test
$auth
YML
  # lib.sh exports REGISTRY_AUTH_FILE for skopeo; distribution would read it as its auth.file setting.
  env -u REGISTRY_AUTH_FILE docker-registry serve "$T/$name.yml" >>"$T/$name.log" 2>&1 &
  DIST_PID[$name]=$!; track "$name" $!
  if ! wait_for 30 sh -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/v2/ | grep -qx $ready" ||
    ! kill -0 "${DIST_PID[$name]}" 2>/dev/null; then
    echo "docker-registry $name did not start on 127.0.0.1:$port:" >&2; cat "$T/$name.log" >&2; return 1
  fi
  echo "# docker-registry $name pid ${DIST_PID[$name]} on 127.0.0.1:$port"
}

# dist_gets NAME PATH_REGEX: successful GETs of matching paths in NAME's access log.
dist_gets() { grep -cE "\"GET $2 HTTP/[0-9.]+\" 200 " "$T/$1.log" || true; }
# dist_requests NAME PATH_REGEX: any request (HEAD or GET, any status) for matching paths.
dist_requests() { grep -cE "\"(GET|HEAD) $2 HTTP/[0-9.]+\" " "$T/$1.log" || true; }

# distinct_port VAR: a free port not handed out before into VAR (free_port
# can give the same one twice in a row: each probe socket closes at once).
PORTS=()
distinct_port() {
  local p
  while p=$(free_port); [[ " ${PORTS[*]} " == *" $p "* ]]; do :; done
  PORTS+=("$p"); printf -v "$1" '%s' "$p"
}
distinct_port REG_PORT; distinct_port SECURE_PORT; distinct_port UP_PORT
REG_UP=127.0.0.1:$REG_PORT SECURE_UP=127.0.0.1:$SECURE_PORT UP=127.0.0.1:$UP_PORT

# (1) reg.test: no auth.
start_distribution reg "$REG_PORT"
# (2) secure.test: htpasswd (bcrypt, as distribution requires).
SECURE_PW=$(new_password) WRONG_PW=$(new_password)  # WRONG_PW: the wrongpw.test entry's
htpasswd -Bbn puller "$SECURE_PW" >"$T/secure.htpasswd"
start_distribution secure "$SECURE_PORT" "$T/secure.htpasswd"

# (3) berth.test: berth with --token-auth; alice pushes, reader pulls.
ALICE_PW=$(new_password) READER_PW=$(new_password)
printf '%s\n' "$ALICE_PW" | "$BERTH_BIN" user add alice --htpasswd "$T/up.htpasswd" --password-stdin >/dev/null
printf '%s\n' "$READER_PW" | "$BERTH_BIN" user add reader --htpasswd "$T/up.htpasswd" --password-stdin >/dev/null
cat >"$T/up-auth.toml" <<'EOF'
[[access]]
who = ["alice"]
repositories = ["team-a/*"]
actions = ["pull", "push"]

[[access]]
who = ["reader"]
repositories = ["team-a/*"]
actions = ["pull"]
EOF
RUST_LOG=info,berth_server=debug "$BERTH_BIN" serve --addr "$UP" --data-dir "$T/up-data" \
  --config "$T/up-auth.toml" --htpasswd "$T/up.htpasswd" --token-auth >"$T/up.log" 2>&1 &
UP_BERTH_PID=$!; track berth-upstream "$UP_BERTH_PID"
if ! wait_for 30 sh -c "curl -s -o /dev/null -w '%{http_code}' http://$UP/v2/ | grep -qx 401" ||
  ! kill -0 "$UP_BERTH_PID" 2>/dev/null; then
  echo "the upstream berth did not start:" >&2; cat "$T/up.log" >&2; exit 1
fi
echo "# berth upstream (token auth) pid $UP_BERTH_PID on $UP"
# up_blob_gets REPO: blob GETs answered 200 by the upstream berth (its debug request lines).
up_blob_gets() { grep -E 'method=GET' "$T/up.log" | grep -E "path=\"?/v2/$1/blobs/sha256:" | grep -cE 'status=200' || true; }

# ---- fill the upstreams ---------------------------------------------------------

start_dockerd
start_containerd

fill_reg_app() {
  local out
  timeout 120 docker import "$T/app.tar" "localhost:$REG_PORT/team/app:v1" >/dev/null &&
    out=$(timeout 120 docker push "localhost:$REG_PORT/team/app:v1" 2>&1) &&
    grep -oE 'digest: sha256:[0-9a-f]{64}' <<<"$out" | cut -d' ' -f2 >"$T/app.digest" && [ -s "$T/app.digest" ]
}
check "docker push team/app:v1 to reg.test (docker-registry, no auth)" fill_reg_app
APP_DIGEST=$(cat "$T/app.digest" 2>/dev/null || echo missing)
to_reg() { skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/oci-$1:latest" "docker://$REG_UP/$2"; }
fill_reg() {
  to_reg fresh-x team/fresh:t && to_reg fresh-y team/fresh:y && to_reg crowd team/crowd:v1 &&
    to_reg bad team/bad:v1 && to_reg e1 team/e1:v1 && to_reg e2 team/e2:v1 && to_reg e3 team/e3:v1 &&
    to_reg hub library/busybox:latest && to_reg gone team/gone:v1 &&
    skopeo_ copy --all --preserve-digests --dest-tls-verify=false "oci:$T/oci-multi:latest" "docker://$REG_UP/team/multi:v1"
}
check "skopeo copy team/fresh, crowd, bad, e1..e3, library/busybox and team/multi (an OCI index) to reg.test" fill_reg
check "skopeo copy team/app:v1 to secure.test (htpasswd, --dest-creds)" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false --dest-creds "puller:$SECURE_PW" \
  "oci:$T/oci-secure:latest" "docker://$SECURE_UP/team/app:v1"
check "skopeo copy team-a/app:v1 to berth.test (token auth, --dest-creds alice)" \
  skopeo_ copy --preserve-digests --dest-tls-verify=false --dest-creds "alice:$ALICE_PW" \
  "oci:$T/oci-berth:latest" "docker://$UP/team-a/app:v1"

# ---- berth in front ---------------------------------------------------------------

printf '%s\n' "$READER_PW" >"$T/berth-test.password"
# secure.test's credentials come from a Docker credential helper on berth's
# PATH, which notes what berth asked it (stdin: the upstream's host).
mkdir -p "$T/bin"
cat >"$T/bin/docker-credential-pt" <<EOF
#!/bin/sh
[ "\$1" = get ] || exit 1
cat >>"$T/helper.asked"; echo >>"$T/helper.asked"
printf '{"ServerURL":"%s","Username":"puller","Secret":"%s"}\n' "$SECURE_UP" "$SECURE_PW"
EOF
chmod +x "$T/bin/docker-credential-pt"
# front_config [MAX_SIZE]: the front berth's config (upstreams, 2 s freshness, no background GC).
front_config() {
  local max_size=""
  [ -z "${1:-}" ] || max_size="max_size = \"$1\""
  cat <<EOF
[gc]
interval = "off"

[cache]
freshness = "2s"
$max_size

[[upstream]]
name = "reg.test"
url = "http://$REG_UP"

# The same registry again, as Docker Hub: its one-component names get library/.
[[upstream]]
name = "docker.io"
url = "http://$REG_UP"

[[upstream]]
name = "secure.test"
url = "http://$SECURE_UP"
credential_helper = "pt"

# secure.test again, with a wrong password.
[[upstream]]
name = "wrongpw.test"
url = "http://$SECURE_UP"
username = "puller"
password = "$WRONG_PW"

[[upstream]]
name = "berth.test"
url = "http://$UP"
username = "reader"
password_file = "$T/berth-test.password"
EOF
}
front_config >"$T/front.toml"

# start_front DATA CONFIG LOG: berth with that config (sets PORT, REG, HOSTREG, FRONT_PID).
start_front() {
  local data=$1 conf=$2 log=$3
  PATH=$T/bin:$PATH RUST_LOG=${FRONT_LOG_LEVEL:-debug} \
    serve_berth "$log" v2_ready --data-dir "$data" --config "$conf" || return 1
  FRONT_PID=$BERTH_PID
}
start_front "$T/berth-data" "$T/front.toml" "$T/berth.log"

# headers_of URL [CURL ARGS...]: the response headers of a GET (body dropped).
headers_of() { local url=$1; shift; curl -sS --max-time 30 -D - -o /dev/null "$@" "$url" | tr -d '\r'; }
# header NAME: that header's value from headers on stdin.
header() { awk -v h="$(tr '[:upper:]' '[:lower:]' <<<"$1")" 'index(tolower($0), h ": ") == 1 {sub(/^[^:]*: /, ""); print}'; }
manifest_url() { echo "http://$REG/v2/$1/manifests/$2"; }
blob_url() { echo "http://$REG/v2/$1/blobs/$2"; }
berth_blob_file() { echo "$T/berth-data/blobs/sha256/${1:7:2}/${1#sha256:}"; }
metric() { curl -sS --max-time 30 "http://$REG/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# ---- 1. docker through reg.test (by prefix) -----------------------------------------

APP=$HOSTREG/reg.test/team/app:v1
docker_pulls() {
  docker rmi "localhost:$REG_PORT/team/app:v1" >/dev/null &&
    timeout 300 docker pull "$APP" >/dev/null &&
    docker image inspect --format '{{join .RepoDigests " "}}' "$APP" | grep -qF "@$APP_DIGEST" &&
    expect_eq ok "$(timeout 120 docker run --rm --network none "$APP" /bin/busybox echo ok)"
}
check "docker pull $APP (cold) and docker run --network none it" docker_pulls
APP_BLOBS=$(curl -sS -H "Accept: $ACCEPT_MANIFESTS" "http://$REG_UP/v2/team/app/manifests/v1" | jq -r '.config.digest, .layers[].digest')
APP_LAYER=$(tail -n 1 <<<"$APP_BLOBS")
each_once() {
  local b
  for b in $APP_BLOBS; do expect_eq 1 "$(dist_gets reg "/v2/team/app/blobs/$b")" || return 1; done
}
check "reg.test served each of team/app's blobs once" each_once
second_docker_pull() {
  local before after
  before=$(dist_gets reg '/v2/team/app/blobs/sha256:[0-9a-f]+') &&
    docker rmi "$APP" >/dev/null && timeout 300 docker pull "$APP" >/dev/null &&
    after=$(dist_gets reg '/v2/team/app/blobs/sha256:[0-9a-f]+') &&
    note "upstream blob GETs for team/app: $before before the second docker pull, $after after" &&
    expect_eq "$before" "$after"
}
check "a second docker pull makes no upstream blob GET" second_docker_pull
hit_headers() {
  expect_eq hit "$(headers_of "$(blob_url reg.test/team/app "$APP_LAYER")" | header berth-cache)" &&
    expect_eq hit "$(headers_of "$(manifest_url reg.test/team/app "$APP_DIGEST")" -H "Accept: $ACCEPT_MANIFESTS" | header berth-cache)"
}
check "curl: the cached layer and the manifest by digest answer Berth-Cache: hit" hit_headers

# ---- 2. podman through secure.test (Basic upstream) -------------------------------------

podman_pulls() {
  podman_ pull --tls-verify=false "$HOSTREG/secure.test/team/app:v1" >/dev/null &&
    podman_ image inspect --format '{{.Digest}}' "$HOSTREG/secure.test/team/app:v1" >"$T/podman.digest" &&
    expect_eq "${DIGEST[secure]}" "$(cat "$T/podman.digest")"
}
check "podman pull --tls-verify=false secure.test/team/app:v1 (upstream with htpasswd)" podman_pulls
check "secure.test served team/app's layer once (after berth's Basic login)" \
  expect_eq 1 "$(dist_gets secure "/v2/team/app/blobs/${LAYER[secure]}")"
wrong_password() {
  local status
  status=$(curl -sS --max-time 60 -o "$T/wrongpw.json" -w '%{http_code}' -H "Accept: $ACCEPT_MANIFESTS" "$(manifest_url wrongpw.test/team/app v1)")
  note "wrong upstream password: $status $(head -c 300 "$T/wrongpw.json")"
  expect_eq 502 "$status" && jq -r '.errors[0].message' <"$T/wrongpw.json" | grep -q '^upstream wrongpw.test: ' &&
    ! grep -qF "$WRONG_PW" "$T/wrongpw.json"
}
check "an upstream refusing berth's credentials: 502 naming the upstream, the password not in the answer" wrong_password
helper_asked() {
  note "the credential helper was asked for: $(sort -u "$T/helper.asked" | grep . | xargs)"
  grep -qF "127.0.0.1:$SECURE_PORT" "$T/helper.asked"
}
check "secure.test's credentials came from docker-credential-pt, asked for the upstream's host" helper_asked

# ---- 3. skopeo through berth.test (token upstream) --------------------------------------

UPREF=$HOSTREG/berth.test/team-a/app:v1
inspected() { expect_eq "${DIGEST[berth]}" "$(skopeo_ inspect --tls-verify=false "docker://$UPREF" | jq -r .Digest)"; }
check "skopeo inspect berth.test/team-a/app:v1: the upstream's digest" inspected
check "skopeo copy berth.test/team-a/app:v1 (token upstream), every blob verified" pull_verify "$UPREF" "${DIGEST[berth]}"
second_skopeo() {
  local before after
  before=$(up_blob_gets team-a/app) && pull_verify "$UPREF" "${DIGEST[berth]}" && after=$(up_blob_gets team-a/app) &&
    note "upstream berth blob GETs for team-a/app: $before before the second skopeo copy, $after after" &&
    expect_eq 2 "$before" && expect_eq "$before" "$after"
}
check "a second skopeo copy makes no blob GET on the token upstream" second_skopeo

# ---- 4. containerd: certs.d hosts.toml, the ?ns= form --------------------------------------

mkdir -p "$T/certs.d/reg.test" "$T/certs.d/$HOSTREG"
cat >"$T/certs.d/reg.test/hosts.toml" <<EOF
server = "https://reg.test"

[host."http://$REG"]
  capabilities = ["pull", "resolve"]
EOF
# The node's own private registry, reached through the same berth: containerd
# sends ?ns=$HOSTREG, which names no upstream, so it is served locally.
cat >"$T/certs.d/$HOSTREG/hosts.toml" <<EOF
server = "http://$HOSTREG"

[host."http://$REG"]
  capabilities = ["pull", "resolve"]
EOF
ctr_digest() { ctr_ -n "$1" images ls | awk -v r="$2" '$1 == r {print $3}'; }
ctr_mirror() {
  ctr_ -n mirror images pull --hosts-dir "$T/certs.d" reg.test/team/app:v1 >/dev/null &&
    expect_eq "$APP_DIGEST" "$(ctr_digest mirror reg.test/team/app:v1)" &&
    expect_eq "sha256:$(ctr_ -n mirror content get "$APP_LAYER" | sha256sum | cut -d' ' -f1)" "$APP_LAYER"
}
check "ctr pull reg.test/team/app:v1 --hosts-dir (certs.d/reg.test names berth: ?ns=reg.test)" ctr_mirror
private_push() {
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/oci-mine:latest" "docker://$HOSTREG/mine/app:v1" &&
    expect_eq "${DIGEST[mine]}" "$(manifest_digest mine/app v1)"
}
check "skopeo copy a private image to $HOSTREG/mine/app:v1" private_push
ctr_private() {
  ctr_ -n private images pull --hosts-dir "$T/certs.d" "$HOSTREG/mine/app:v1" >/dev/null &&
    expect_eq "${DIGEST[mine]}" "$(ctr_digest private "$HOSTREG/mine/app:v1")" &&
    expect_eq 0 "$(cat "$T/reg.log" "$T/secure.log" "$T/up.log" | grep -c '/v2/mine/')" &&
    expect_eq "" "$(headers_of "$(manifest_url mine/app v1)" -H "Accept: $ACCEPT_MANIFESTS" | header berth-cache)"
}
check "ctr pull $HOSTREG/mine/app:v1 through the same hosts-dir (?ns=$HOSTREG): local, no upstream asked, no Berth-Cache" ctr_private
# The private image's layer is in berth's store, but reg.test does not have
# it under team/app: a cached repository must not hand it out.
no_leak() {
  expect_eq 404 "$(http_status "$(blob_url reg.test/team/app "${LAYER[mine]}")")" &&
    expect_eq 404 "$(http_status -I "$(blob_url reg.test/team/app "${LAYER[mine]}")")"
}
check "a private layer in berth's store is 404 through a cached repository whose upstream lacks it (GET, HEAD)" no_leak

# ---- 4b. Docker Hub names, and an index whose other platform is never pulled --------------

HUB=$HOSTREG/docker.io/busybox:latest
hub_docker() {
  timeout 300 docker pull "$HUB" >/dev/null &&
    docker image inspect --format '{{join .RepoDigests " "}}' "$HUB" | grep -qF "@${DIGEST[hub]}" &&
    expect_eq ok "$(timeout 120 docker run --rm --network none "$HUB" /bin/busybox echo ok)" &&
    [ "$(dist_gets reg '/v2/library/busybox/manifests/latest')" -ge 1 ]
}
check "docker pull $HUB (upstream named docker.io: busybox is library/busybox there) and run it" hub_docker
# As a KinD node mirrors Docker Hub; `server` is a dead loopback port, so a
# failure here can never reach the real Docker Hub.
mkdir -p "$T/certs.d/docker.io"
cat >"$T/certs.d/docker.io/hosts.toml" <<EOF
server = "http://127.0.0.1:9"

[host."http://$REG"]
  capabilities = ["pull", "resolve"]
EOF
hub_ctr() {
  ctr_ -n hub images pull --hosts-dir "$T/certs.d" docker.io/library/busybox:latest >/dev/null &&
    expect_eq "${DIGEST[hub]}" "$(ctr_digest hub docker.io/library/busybox:latest)" &&
    expect_eq '["docker.io/library/busybox"]' "$(api '_catalog?n=1000' | jq -c '[.repositories[] | select(startswith("docker.io/"))]')"
}
check "ctr pull docker.io/library/busybox:latest --hosts-dir (?ns=docker.io): the same one cached repository" hub_ctr
MULTI=$HOSTREG/reg.test/team/multi:v1
multi_docker() {
  timeout 300 docker pull "$MULTI" >/dev/null &&
    docker image inspect --format '{{join .RepoDigests " "}}' "$MULTI" | grep -qF "@$INDEX_DIGEST" &&
    expect_eq ok "$(timeout 120 docker run --rm --network none "$MULTI" /bin/busybox echo ok)" &&
    expect_eq 1 "$(dist_gets reg '/v2/team/multi/manifests/sha256:[0-9a-f]+')"
}
# (lib.sh's closing `berth fsck` then checks that the arm64 child never
# pulled is a lazy reference, not damage.)
check "docker pull $MULTI (an index): one platform's manifest fetched, the image runs" multi_docker

# ---- 5. pushes into a cached repository ---------------------------------------------------

# berth's DENIED message: "repository reg.test/team/app is a cache of reg.test: push under another name"
CACHED_MSG='denied.*is a cache of reg\.test'
writes_upstream() { grep -cE '"(POST|PUT|PATCH|DELETE) ' "$T/reg.log" || true; }
WRITES_BEFORE=$(writes_upstream)
docker tag "$APP" "$HOSTREG/reg.test/team/app:pushed" 2>/dev/null || true
refused "docker push into reg.test/team/app (cached): DENIED, berth's message shown" \
  "$CACHED_MSG" timeout 120 docker push "$HOSTREG/reg.test/team/app:pushed"
docker rmi "$HOSTREG/reg.test/team/app:pushed" >/dev/null 2>&1 || true  # so the pull with the upstream down fetches layers
refused "skopeo copy into reg.test/team/new (under a cached prefix): DENIED, berth's message shown" \
  "$CACHED_MSG" skopeo_ copy --dest-tls-verify=false "oci:$T/oci-local:latest" "docker://$HOSTREG/reg.test/team/new:v1"
check "the refused pushes wrote nothing upstream" expect_eq "$WRITES_BEFORE" "$(writes_upstream)"

# ---- 6. tag freshness -----------------------------------------------------------------------

now() { date +%s.%N; }
since() { awk -v t0="$1" -v t1="$(now)" 'BEGIN { printf "%.2f", t1 - t0 }'; }
# get_manifest REPO REF: "DIGEST CACHE" of a manifest GET through berth.
get_manifest() {
  local h
  h=$(headers_of "$(manifest_url "$1" "$2")" -H "Accept: $ACCEPT_MANIFESTS")
  echo "$(header docker-content-digest <<<"$h") $(header berth-cache <<<"$h")"
}
fresh_manifest=$T/oci-fresh-y/blobs/sha256/${DIGEST[fresh-y]#sha256:}
freshness() {
  local t0 first within elapsed asked_before asked_after after
  t0=$(now)
  first=$(get_manifest reg.test/team/fresh t)
  asked_before=$(dist_requests reg '/v2/team/fresh/manifests/[^ ]+')
  # Move the tag upstream (fresh-y's blobs are there already under tag y).
  expect_eq 201 "$(http_status -X PUT -H "Content-Type: $OCI_MANIFEST" --data-binary "@$fresh_manifest" "http://$REG_UP/v2/team/fresh/manifests/t")" || return 1
  within=$(get_manifest reg.test/team/fresh t)
  asked_after=$(dist_requests reg '/v2/team/fresh/manifests/[^ ]+')
  elapsed=$(since "$t0")
  note "freshness: first $first; after the upstream move, ${elapsed}s later: $within"
  awk -v e="$elapsed" 'BEGIN { exit !(e < 1.5) }' || { echo "too slow to prove anything: ${elapsed}s"; return 1; }
  expect_eq "${DIGEST[fresh-x]} miss" "$first" &&
    expect_eq "${DIGEST[fresh-x]} hit" "$within" &&
    expect_eq "$asked_before" "$asked_after" || return 1
  sleep "$(awk -v e="$(since "$t0")" 'BEGIN { r = 2.5 - e; print (r > 0 ? r : 0) }')"
  after=$(get_manifest reg.test/team/fresh t)
  note "freshness: 2.5 s after the first pull: $after"
  expect_eq "${DIGEST[fresh-y]}" "${after% *}"
}
check "freshness 2 s: a tag moved upstream is old (hit, upstream not asked) within it, new after" freshness

# ---- 7. 20 concurrent pulls of one uncached image -----------------------------------------------

crowd() {
  local i pids=() failed=0 b
  for i in $(seq 10); do
    pull_verify "$HOSTREG/reg.test/team/crowd:v1" "${DIGEST[crowd]}" >"$T/crowd-skopeo-$i.out" 2>&1 &
    pids+=($!)
    curl -sS --max-time 60 -D "$T/crowd-curl-$i.headers" -o "$T/crowd-curl-$i.blob" \
      "$(blob_url reg.test/team/crowd "${LAYER[crowd]}")" >"$T/crowd-curl-$i.out" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || failed=$((failed + 1)); done
  for i in $(seq 10); do
    expect_eq "${LAYER[crowd]}" "sha256:$(sha256sum <"$T/crowd-curl-$i.blob" | cut -d' ' -f1)" || failed=$((failed + 1))
  done
  [ "$failed" -eq 0 ] || { cat "$T"/crowd-*.out; return 1; }
  note "the 10 curls were answered Berth-Cache: $(cat "$T"/crowd-curl-*.headers | tr -d '\r' | header berth-cache | sort | uniq -c | xargs)"
  for b in "${CONFIG[crowd]}" "${LAYER[crowd]}"; do
    expect_eq 1 "$(dist_gets reg "/v2/team/crowd/blobs/$b")" || return 1
  done
}
check "10 skopeo copies + 10 curl GETs of uncached team/crowd at once: all verified, one upstream GET per blob" crowd
check "the 20 concurrent pulls fetched team/crowd's manifest upstream once" \
  expect_eq 1 "$(dist_gets reg '/v2/team/crowd/manifests/[^ ]+')"

# ---- 7b. a client that leaves mid-pull -----------------------------------------------------------

gone_early() {
  local file
  # 1 MiB of a 16 MiB layer at 4 MiB/s, then head exits and curl with it.
  curl -sS --max-time 30 --limit-rate 4M "$(blob_url reg.test/team/gone "${LAYER[gone]}")" 2>/dev/null | head -c $((1 << 20)) >/dev/null
  file=$(berth_blob_file "${LAYER[gone]}")
  wait_for 20 test -f "$file" || { echo "no blob file 20 s after the client left"; return 1; }
  expect_eq "${LAYER[gone]}" "sha256:$(sha256sum <"$file" | cut -d' ' -f1)" &&
    expect_eq hit "$(headers_of "$(blob_url reg.test/team/gone "${LAYER[gone]}")" | header berth-cache)" &&
    expect_eq 1 "$(dist_gets reg "/v2/team/gone/blobs/${LAYER[gone]}")"
}
check "a curl that leaves after 1 MiB of an uncached 16 MiB layer: berth still caches it whole (then hit, one upstream GET)" gone_early

# ---- 8. wrong bytes upstream --------------------------------------------------------------------

BAD=${LAYER[bad]}
BAD_FILE=$T/reg-data/docker/registry/v2/blobs/sha256/${BAD:7:2}/${BAD#sha256:}/data
cp "$BAD_FILE" "$T/bad-layer.good"
BAD_SIZE=$(stat -c %s "$BAD_FILE")
head -c "$BAD_SIZE" /dev/urandom >"$BAD_FILE"
bad_pull_fails() {
  local rc=0 out
  out=$(skopeo_ copy --src-tls-verify=false "docker://$HOSTREG/reg.test/team/bad:v1" "dir:$T/bad-pull" 2>&1) || rc=$?
  note "skopeo said (exit $rc): $(tail -n 1 <<<"$out" | cut -c1-300)"
  [ "$rc" -ne 0 ] || { echo "skopeo copy succeeded"; return 1; }
  # berth did ask: the failure is its refusal of the bytes, not a missing manifest
  [ "$(dist_gets reg "/v2/team/bad/blobs/$BAD")" -ge 1 ] || { echo "reg.test was never asked for the layer"; return 1; }
}
check "a layer overwritten upstream (same length, other bytes): skopeo copy through berth fails" bad_pull_fails
bad_curl() {
  local rc=0 status
  status=$(curl -sS --max-time 60 -o "$T/bad.blob" -w '%{http_code}' "$(blob_url reg.test/team/bad "$BAD")" 2>"$T/bad.err") || rc=$?
  note "curl of the bad layer: exit $rc, status $status, $(stat -c %s "$T/bad.blob" 2>/dev/null || echo 0) bytes; $(head -c 200 "$T/bad.err")"
  # Passes when the connection was cut (200 sent, body ended by an error) or
  # the answer was 502; a clean 200 would hand the client the wrong bytes as
  # the blob, and a 404 would mean berth did not look upstream at all.
  [ "$rc" -ne 0 ] || [ "$status" = 502 ]
}
check "curl of that layer through berth does not get it (connection cut or 502, never a clean 200)" bad_curl
check "berth holds no file for the bad layer's digest" test ! -e "$(berth_blob_file "$BAD")"
cp "$T/bad-layer.good" "$BAD_FILE"
fixed() {
  pull_verify "$HOSTREG/reg.test/team/bad:v1" "${DIGEST[bad]}" &&
    expect_eq "$BAD" "sha256:$(sha256sum <"$(berth_blob_file "$BAD")" | cut -d' ' -f1)"
}
check "upstream fixed: the pull works and berth now stores the good bytes" fixed

# ---- 9. upstream down ---------------------------------------------------------------------------

stop_pid reg "${DIST_PID[reg]}"
sleep 2.2  # past the freshness of every tag checked so far
stale_served() {
  local h
  h=$(headers_of "$(manifest_url reg.test/team/app v1)" -H "Accept: $ACCEPT_MANIFESTS") &&
    note "stale answer: $(grep -iE '^(http|berth-cache|warning|docker-content-digest)' <<<"$h" | tr '\n' ' ')" &&
    expect_eq 200 "$(head -n 1 <<<"$h" | cut -d' ' -f2)" &&
    expect_eq "$APP_DIGEST" "$(header docker-content-digest <<<"$h")" &&
    expect_eq stale "$(header berth-cache <<<"$h")" &&
    header warning <<<"$h" | grep -q '^110 '
}
check "reg.test stopped: team/app:v1 served with Berth-Cache: stale and a Warning: 110 header" stale_served
stale_logged() { grep -E 'WARN' "$T/berth.log" | grep -F 'reg.test/team/app' | grep -qF 'reg.test'; }
check "berth logged a warning naming the repository and the upstream" stale_logged
stale_docker() {
  docker rmi "$APP" >/dev/null && timeout 300 docker pull "$APP" >/dev/null &&
    expect_eq ok "$(timeout 120 docker run --rm --network none "$APP" /bin/busybox echo ok)"
}
check "reg.test stopped: docker pull $APP still works, and it runs" stale_docker
check "reg.test stopped: team/app's manifest by digest is a plain hit (a digest is never asked upstream)" \
  expect_eq "$APP_DIGEST hit" "$(get_manifest reg.test/team/app "$APP_DIGEST")"
never_cached() {
  local status rc=0 out
  status=$(curl -sS --max-time 60 -o "$T/never.json" -w '%{http_code}' -H "Accept: $ACCEPT_MANIFESTS" "$(manifest_url reg.test/team/never v1)")
  note "never-cached: $status $(head -c 300 "$T/never.json")"
  out=$(timeout 120 docker pull "$HOSTREG/reg.test/team/never:v1" 2>&1) || rc=$?
  note "docker said (exit $rc): $(tail -n 1 <<<"$out" | cut -c1-300)"
  note "skopeo said: $(skopeo_ inspect --tls-verify=false "docker://$HOSTREG/reg.test/team/never:v1" 2>&1 | tail -n 1 | cut -c1-300)"
  expect_eq 502 "$status" && jq -r '.errors[0].message' <"$T/never.json" | grep -q 'upstream reg.test' && [ "$rc" -ne 0 ]
}
check "reg.test stopped: a never-cached image is a 502 naming the upstream, docker pull fails" never_cached
start_distribution reg "$REG_PORT"

# ---- 10. metrics and secrets ---------------------------------------------------------------------

metrics_count() {
  local m v ok=0
  for m in hits misses stale upstream_errors fetched_bytes; do
    v=$(metric "berth_pull_through_${m}_total{upstream=\"reg.test\"}")
    note "berth_pull_through_${m}_total{upstream=\"reg.test\"} ${v:-absent}"
    awk -v v="${v:-0}" 'BEGIN { exit !(v > 0) }' || ok=1
  done
  return "$ok"
}
check "/metrics: reg.test's hits, misses, stale, upstream errors and fetched bytes all counted" metrics_count
# /api/v1/repositories (what the web UI shows): a cached repository names its upstream, a pushed one nothing.
api_origin() {
  curl -sS --max-time 30 "http://$REG/api/v1/repositories?n=1000" >"$T/repos.json" &&
    note "api: $(jq -c '[.. | objects | select(.name? == "reg.test/team/app" or .name? == "mine/app") | {name, cached_from}]' <"$T/repos.json")" &&
    expect_eq 'reg.test team/app number' \
      "$(jq -r '.. | objects | select(.name? == "reg.test/team/app") | .cached_from | "\(.upstream) \(.remote) \(.checked_at | type)"' <"$T/repos.json")" &&
    expect_eq null "$(jq -c '.. | objects | select(.name? == "mine/app") | .cached_from' <"$T/repos.json")"
}
check "/api/v1/repositories: reg.test/team/app cached_from {reg.test, team/app, checked_at}; mine/app null" api_origin
nothing_leaked() {
  local secrets=(-e "$SECURE_PW" -e "$READER_PW" -e "$WRONG_PW" -e "$(printf 'puller:%s' "$SECURE_PW" | base64 -w0)"
    -e "$(printf 'puller:%s' "$WRONG_PW" | base64 -w0)"
    -e "$(printf 'reader:%s' "$READER_PW" | base64 -w0)" -e eyJ)
  if grep -nF "${secrets[@]}" "$T/berth.log"; then echo "found in berth's log (lines above)"; return 1; fi
  [ -s "$T/berth.log" ]
}
check "no upstream password, Basic credential or token in berth's debug log" nothing_leaked
stop_pid berth "$FRONT_PID"

# ---- 11. eviction under [cache] max_size -----------------------------------------------------------

# e1, e2, e3 are about 1 MiB each; the limit sits half an image below their
# sum, so evicting exactly one brings the cache under it.
E_TOTAL=$((BYTES[e1] + BYTES[e2] + BYTES[e3]))
E_MAX=$((E_TOTAL - BYTES[e2] / 2))
front_config "${E_MAX}B" >"$T/evict.toml"
start_front "$T/evict-data" "$T/evict.toml" "$T/evict.log"
note "eviction: e1+e2+e3 = $E_TOTAL bytes, max_size = ${E_MAX}B"
evict_fill() {
  local n
  for n in e1 e2 e3; do pull_verify "$HOSTREG/reg.test/team/$n:v1" "${DIGEST[$n]}" || return 1; sleep 1.1; done
  skopeo_ copy --preserve-digests --dest-tls-verify=false "oci:$T/oci-local:latest" "docker://$HOSTREG/local/app:v1" &&
    sleep 1.1 && pull_verify "$HOSTREG/reg.test/team/e1:v1" "${DIGEST[e1]}"
}
check "pull e1, e2, e3 through berth, push local/app, pull e1 again (e2 now least recently pulled)" evict_fill
evict_file() { echo "$T/evict-data/blobs/sha256/${1:7:2}/${1#sha256:}"; }
# The first pass through the admin socket, whose NDJSON report counts evictions.
evicted() {
  local report catalog
  curl -sS --max-time 120 --unix-socket "$T/evict-data/admin.sock" -X POST 'http://berth/api/v1/gc?grace=0s' >"$T/evict-gc.ndjson" || return 1
  report=$(jq -c 'select(.report) | .report' <"$T/evict-gc.ndjson")
  note "gc pass 1 (admin API, grace 0s): phases $(jq -r 'select(.phase) | .phase' <"$T/evict-gc.ndjson" | xargs | tr ' ' ,); report $(jq -c '{evicted_images, manifests_removed, blobs_removed, removed: [.removed[] | {kind, repository, reason}]}' <<<"$report" | cut -c1-400)"
  catalog=$(api '_catalog?n=1000' | jq -c '.repositories | sort')
  note "catalog after: $catalog"
  expect_eq 1 "$(jq .evicted_images <<<"$report")" &&
    expect_eq "reg.test/team/e2 ${DIGEST[e2]}" "$(jq -r '.removed[] | select(.kind == "manifest") | "\(.repository) \(.name)"' <<<"$report")" &&
    expect_eq '["local/app","reg.test/team/e1","reg.test/team/e3"]' "$catalog"
}
check "gc pass with grace 0s (admin API) evicts e2 only: its report, the catalog; e1, e3 and the pushed local/app stay" evicted
check "/metrics: berth_gc_evicted_images_total 1" expect_eq 1 "$(metric berth_gc_evicted_images_total || true)"
# The evicted image's blobs got a fresh grace; the next pass takes them
# (times are whole seconds: a pass in the same second as the eviction would
# still see them as wanted "now").
second_pass() {
  local out n
  sleep 1.1
  out=$(timeout 120 "$BERTH_BIN" gc --data-dir "$T/evict-data" --grace 0s 2>&1) || { echo "$out"; return 1; }
  note "berth gc pass 2: $(grep -v ' WARN ' <<<"$out" | tr '\n' ' ' | cut -c1-300)"
  [ ! -e "$(evict_file "${LAYER[e2]}")" ] || { echo "e2's layer file is still there"; return 1; }
  for n in e1 e3 local; do
    { [ -f "$(evict_file "${LAYER[$n]}")" ] && [ -f "$(evict_file "${CONFIG[$n]}")" ]; } || { echo "$n's blobs are gone"; return 1; }
  done
}
check "berth gc --grace 0s again: e2's layer file is gone, e1's, e3's and local/app's blobs stay" second_pass
check "the pushed local/app:v1 still pulls whole" pull_verify "$HOSTREG/local/app:v1" "${DIGEST[local]}"
refetched() {
  pull_verify "$HOSTREG/reg.test/team/e2:v1" "${DIGEST[e2]}" &&
    expect_eq 2 "$(dist_gets reg "/v2/team/e2/blobs/${LAYER[e2]}")"
}
check "the evicted e2 pulls again, its layer fetched from reg.test a second time" refetched
stop_pid berth "$FRONT_PID"
check "berth fsck: the eviction berth's folder is clean" "$BERTH_BIN" fsck --data-dir "$T/evict-data"

echo "# pull_through.sh took $((SECONDS - SCRIPT_START)) s"
# lib.sh's cleanup runs `berth fsck` on $T/berth-data (the first front berth's folder, lazy references and all).
