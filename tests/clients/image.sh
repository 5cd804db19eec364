#!/usr/bin/env bash
# image: berth's container image as a drop-in for registry:2. Builds it with
# deploy/build-image.sh into this test's own dockerd, runs it with host
# networking, pushes/pulls/runs busybox through it, and checks the REGISTRY_*
# variables registry:2 users pass (auth and TLS too), the non-root user and
# the missing shell.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Container IDs go to a file: `check` runs its command in a subshell.
CONTAINERS=$T/containers
touch "$CONTAINERS"
remove_containers() {
  local id
  while read -r id; do docker rm -f "$id" >/dev/null 2>&1 || true; done <"$CONTAINERS"
  [ -z "${VOLUME:-}" ] || docker volume rm -f "$VOLUME" >/dev/null 2>&1 || true
}
# Containers go before lib.sh's cleanup stops dockerd; keep the exit status.
trap 'rc=$?; set +e; remove_containers; (exit $rc); cleanup' EXIT

start_dockerd
IMAGE=berth-test:image-sh
export BERTH_PROFILE=${BERTH_PROFILE:-release}

# A CLI that cannot build without buildx, or none: a clear error, before any build.
refuses_cli() {  # refuses_cli CLI WORDS: the script fails and its error says WORDS
  local out
  ! out=$(BERTH_DOCKER_CLI=$1 "$REPO_ROOT/deploy/build-image.sh" "$IMAGE" 2>&1) &&
    { grep -q "$2" <<<"$out" || { echo "$out"; return 1; }; }
}
check "build-image.sh: a missing docker CLI is named" refuses_cli "$T/no-docker" "not found"
if [ -x /usr/local/bin/docker ] && [ "$(/usr/local/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)" -ge 23 ] &&
  ! /usr/local/bin/docker buildx version >/dev/null 2>&1; then
  check "build-image.sh: a docker CLI that needs buildx is refused" refuses_cli /usr/local/bin/docker "buildx"
fi

# From a folder with a space in its name; the build uses this test's dockerd
# (DOCKER_HOST from start_dockerd).
mkdir -p "$T/a cwd"
build_image() {
  (cd "$T/a cwd" && "$REPO_ROOT/deploy/build-image.sh" "$IMAGE") >"$T/build.log" 2>&1 || { tail -n 30 "$T/build.log"; return 1; }
}
check "deploy/build-image.sh $IMAGE (BERTH_PROFILE=$BERTH_PROFILE, no network)" build_image
docker image inspect "$IMAGE" >/dev/null 2>&1 || exit 1
echo "# image size: $(docker image inspect --format '{{.Size}}' "$IMAGE") bytes"

version_tag() {
  local version
  version=$(docker image inspect --format '{{index .Config.Labels "org.opencontainers.image.version"}}' "$IMAGE") &&
    [ -n "$version" ] && docker image inspect "berth-test:$version" >/dev/null
}
check "image is also tagged with its version label" version_tag

# run_berth PORT [docker run options...]: start the image with host
# networking (and CMD, when set, as its one argument), write its ID to
# $T/cid and wait for /v2/ on 127.0.0.1:PORT to answer READY_STATUS (200;
# 401 with auth on).
run_berth() {
  local port=$1 cid; shift
  : >"$T/cid"
  cid=$(docker run -d --network host "$@" "$IMAGE" ${CMD:+"$CMD"}) || return 1
  echo "$cid" >>"$CONTAINERS"
  echo "$cid" >"$T/cid"
  REG=127.0.0.1:$port
  v2_answers() { [ "$(http_status "http://$REG/v2/")" = "${READY_STATUS:-200}" ]; }
  wait_for 30 v2_answers || { docker logs "$cid" 2>&1 | tail -n 20; return 1; }
}
last_cid() { cat "$T/cid"; }
# logs_say CID TEXT: the container's log holds TEXT within 10 s. dockerd copies
# a container's output to its log asynchronously, so a line berth wrote before
# it began to listen may not be readable yet when /v2/ first answers.
logs_say() { wait_for 10 sh -c 'docker logs "$1" 2>&1 | grep -qF -- "$2"' _ "$1" "$2"; }

# ---- the drop-in: REGISTRY_HTTP_ADDR, a named volume, push/pull/run ---------------
PORT=$(free_port)
VOLUME=berth-image-sh-$$
check "docker run -e REGISTRY_HTTP_ADDR=127.0.0.1:$PORT: /v2/ answers 200" \
  run_berth "$PORT" -e "REGISTRY_HTTP_ADDR=127.0.0.1:$PORT" -v "$VOLUME:/var/lib/registry"
MAIN=$(last_cid)
REG=127.0.0.1:$PORT
IMG=localhost:$PORT/busybox:latest

make_rootfs_tar "$T/rootfs.tar"
check "docker import busybox rootfs" timeout 120 docker import "$T/rootfs.tar" "$IMG"
check "docker push $IMG" timeout 300 docker push "$IMG"
check "docker rmi $IMG" docker rmi "$IMG"
check "docker pull $IMG" timeout 300 docker pull "$IMG"
run_prints_ok() { expect_eq ok "$(timeout 120 docker run --rm --network none "$IMG" /bin/busybox echo ok)"; }
check "docker run the pulled image prints ok" run_prints_ok

not_root() {
  local pid uid
  expect_eq 65532:65532 "$(docker inspect --format '{{.Config.User}}' "$MAIN")" &&
    pid=$(docker inspect --format '{{.State.Pid}}' "$MAIN") &&
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status") &&
    expect_eq 65532 "$uid"
}
check "the container's process runs as uid 65532, not root" not_root

delete_status() {  # delete_status REPO TAG: status of DELETE on the tag's digest
  local digest
  digest=$(manifest_digest "$1" "$2")
  http_status -X DELETE "http://$REG/v2/$1/manifests/$digest"
}
check "DELETE is refused (405) by default, as registry:2" expect_eq 405 "$(delete_status busybox latest)"

fsck_in_image() {
  docker stop "$MAIN" >/dev/null &&
    docker run --rm -v "$VOLUME:/var/lib/registry" "$IMAGE" fsck
}
check "docker run IMAGE fsck (same baked config) finds the volume clean" fsck_in_image

# ---- each supported REGISTRY_* variable --------------------------------------
PORT2=$(free_port)
mkdir -p "$T/root dir"
chown 65532:65532 "$T/root dir"
UI=http://ui.example:8080
check "docker run with REGISTRY_STORAGE_* , CORS header and an unknown variable" \
  run_berth "$PORT2" -e "REGISTRY_HTTP_ADDR=:$PORT2" \
  -e REGISTRY_STORAGE_DELETE_ENABLED=true \
  -e REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/data \
  -v "$T/root dir:/data" \
  -e "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin=['$UI']" \
  -e REGISTRY_FOO_BAR=x
SECOND=$(last_cid)
REG=127.0.0.1:$PORT2
IMG2=localhost:$PORT2/busybox:latest
push_second() { docker tag "$IMG" "$IMG2" && timeout 300 docker push "$IMG2" >/dev/null; }
check "docker push to the second container" push_second
data_in_root_dir() { [ -f "$T/root dir/meta.db" ] && [ -n "$(find "$T/root dir/blobs" -type f | head -n 1)" ]; }
check "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: data lands in the mounted folder" data_in_root_dir
check "REGISTRY_STORAGE_DELETE_ENABLED=true: DELETE answers 202" expect_eq 202 "$(delete_status busybox latest)"
preflight_origin() {
  curl -sS -o /dev/null -D - -X OPTIONS -H "Origin: $UI" -H 'Access-Control-Request-Method: GET' \
    "http://$REG/v2/_catalog" | tr -d '\r' | awk -F': ' 'tolower($1) == "access-control-allow-origin" {print $2}'
}
check "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin: preflight allows $UI" expect_eq "$UI" "$(preflight_origin)"
unknown_logged() { logs_say "$SECOND" 'REGISTRY_FOO_BAR is not understood by berth and is ignored'; }
check "an unknown REGISTRY_FOO_BAR is logged as ignored" unknown_logged

# ---- BERTH_* beside REGISTRY_* -----------------------------------------------
PORT3=$(free_port) PORT4=$(free_port)
# Started the way registry:2 is started with its config file as the argument.
CMD=/etc/docker/registry/config.yml check "BERTH_ADDR beside REGISTRY_HTTP_ADDR: BERTH_ADDR's port answers" \
  run_berth "$PORT3" -e "BERTH_ADDR=127.0.0.1:$PORT3" -e "REGISTRY_HTTP_ADDR=127.0.0.1:$PORT4"
THIRD=$(last_cid)
yml_warned() { logs_say "$THIRD" 'registry:2 YAML config is not read'; }
check "IMAGE /etc/docker/registry/config.yml serves, warning that the YAML is not read" yml_warned
berth_wins() {
  expect_eq 000 "$(http_status "http://127.0.0.1:$PORT4/v2/")" &&
    logs_say "$THIRD" 'BERTH_ADDR and REGISTRY_HTTP_ADDR are both set: using BERTH_ADDR'
}
check "REGISTRY_HTTP_ADDR's port is not used, and a warning says BERTH_ADDR wins" berth_wins

# ---- auth: an htpasswd file mounted read-only, as for registry:2 ------------------
# The container runs as 65532, not root as registry:2 does: the file must be
# readable by that user (berth user add writes it 0600 for its owner).
PORT5=$(free_port)
mkdir -p "$T/auth"
AUTH_PW=image-$$-$RANDOM-pw
make_htpasswd() {
  printf '%s\n' "$AUTH_PW" | "$BERTH_BIN" user add alice --htpasswd "$T/auth/htpasswd" --password-stdin &&
    chown 65532:65532 "$T/auth/htpasswd"
}
check "berth user add alice --htpasswd auth/htpasswd, owned by the image's user" make_htpasswd
READY_STATUS=401 check "docker run -v auth:/auth:ro -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd -e REGISTRY_AUTH_HTPASSWD_REALM: /v2/ answers 401" \
  run_berth "$PORT5" -e "REGISTRY_HTTP_ADDR=127.0.0.1:$PORT5" -v "$T/auth:/auth:ro" \
  -e REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd -e 'REGISTRY_AUTH_HTPASSWD_REALM=Registry Realm'
AUTHED=$(last_cid)
REG=127.0.0.1:$PORT5
IMG5=localhost:$PORT5/busybox:latest
challenge() {
  expect_eq 'Basic realm="Registry Realm"' \
    "$(curl -sS -o /dev/null -D - "http://$REG/v2/" | tr -d '\r' | awk -F': ' 'tolower($1) == "www-authenticate" {print $2}')"
}
check "anonymous /v2/: WWW-Authenticate: Basic realm=\"Registry Realm\"" challenge
push_refused() { docker tag "$IMG" "$IMG5" && ! timeout 120 docker push "$IMG5" >/dev/null 2>&1; }
check "docker push before login is refused" push_refused
login() { printf '%s' "$AUTH_PW" | timeout 60 docker login "localhost:$PORT5" -u alice --password-stdin; }
check "docker login localhost:$PORT5 -u alice --password-stdin" login
check "docker push $IMG5 after login" timeout 300 docker push "$IMG5"
pull_back() { docker rmi "$IMG5" >/dev/null && timeout 300 docker pull "$IMG5" >/dev/null; }
check "docker pull $IMG5 after login" pull_back
anonymous_pull_refused() { expect_eq 401 "$(http_status -H "Accept: $ACCEPT_MANIFESTS" "http://$REG/v2/busybox/manifests/latest")"; }
check "an anonymous manifest GET is refused (401)" anonymous_pull_refused
check "docker logout" docker logout "localhost:$PORT5"
healthz_anonymous() { expect_eq 200 "$(http_status "http://$REG/healthz")"; }
check "/healthz stays anonymous (probes)" healthz_anonymous
pw_not_logged() { ! docker logs "$AUTHED" 2>&1 | grep -qF "$AUTH_PW"; }
check "the password is not in the container's log" pw_not_logged

# ---- TLS: certificate and key mounted read-only, as for registry:2 ---------------
PORT6=$(free_port)
mkdir -p "$T/certs"
make_certs() {
  "$BERTH_BIN" cert --out "$T/certs" --name localhost >/dev/null &&
    chown 65532:65532 "$T/certs/server.key" "$T/certs/server.crt"
}
check "berth cert --out certs: a CA and a server certificate for localhost" make_certs
tls_up() { curl -sS -o /dev/null --max-time 5 --cacert "$T/certs/ca.crt" "https://localhost:$PORT6/v2/"; }
run_tls() {
  local cid
  cid=$(docker run -d --network host -v "$T/certs:/certs:ro" -e "REGISTRY_HTTP_ADDR=127.0.0.1:$PORT6" \
    -e REGISTRY_HTTP_TLS_CERTIFICATE=/certs/server.crt -e REGISTRY_HTTP_TLS_KEY=/certs/server.key "$IMAGE") || return 1
  echo "$cid" >>"$CONTAINERS"
  wait_for 30 tls_up || { docker logs "$cid" 2>&1 | tail -n 20; return 1; }
}
check "docker run -e REGISTRY_HTTP_TLS_CERTIFICATE/_KEY -v certs:/certs:ro: https answers" run_tls
tls_v2() { expect_eq 200 "$(http_status --cacert "$T/certs/ca.crt" "https://localhost:$PORT6/v2/")"; }
check "curl --cacert ca.crt https://localhost:PORT/v2/: 200" tls_v2
unknown_ca() { ! curl -sS -o /dev/null --max-time 10 "https://localhost:$PORT6/v2/" 2>/dev/null; }
check "curl without the CA is refused (unknown issuer)" unknown_ca
plain_to_tls() { [ "$(http_status "http://localhost:$PORT6/v2/")" != 200 ]; }
check "plain http to the TLS port does not get 200" plain_to_tls

# ---- nothing but berth in the image -------------------------------------------
image_files() {  # every path in the image's filesystem, but what docker adds to any container
  local cid files
  cid=$(docker create "$IMAGE") || return 1
  files=$(docker export "$cid" | tar -t | grep -vE '^(\.dockerenv|dev/|proc/|sys/|etc/(hosts|hostname|resolv\.conf|mtab))' | sort | tr '\n' ' ')
  docker rm "$cid" >/dev/null
  expect_eq "berth etc/ etc/berth/ etc/berth/config.toml var/ var/lib/ var/lib/registry/ " "$files"
}
check "the image holds berth, its config and an empty data folder, nothing else" image_files
no_shell() { ! docker run --rm --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; }
check "the image has no shell (--entrypoint /bin/sh fails)" no_shell
