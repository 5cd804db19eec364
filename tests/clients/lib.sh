# shellcheck shell=bash disable=SC2034  # variables here are used by the scripts that source this file
# Shared helpers for the real-client acceptance tests. Source it; do not run it.
#
# Every server started here listens on 127.0.0.1 or a unix socket inside one
# per-run temp dir ($T), is recorded by PID, and is stopped by that PID on exit.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BERTH_BIN=${BERTH_BIN:-$REPO_ROOT/target/release/berth}
T=$(mktemp -d "${TMPDIR:-/tmp}/berth-it.XXXXXX")
export REGISTRY_AUTH_FILE=$T/auth.json DOCKER_CONFIG=$T/docker-config
echo "{}" >"$REGISTRY_AUTH_FILE"
PASSED=0 FAILED=0
STARTED_PIDS=()   # "name:pid", stopped in reverse order

ACCEPT_MANIFESTS='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json
case $(uname -m) in x86_64) HOST_ARCH=amd64 ;; aarch64) HOST_ARCH=arm64 ;; *) HOST_ARCH=$(uname -m) ;; esac

# ---- bookkeeping -----------------------------------------------------------

# check NAME CMD...: run CMD, print "ok - NAME" or "FAIL - NAME" plus its output.
# (set -e is off inside CMD when it is a function: chain its steps with &&.)
check() {
  local name=$1 out; shift
  if out=$("$@" 2>&1); then
    PASSED=$((PASSED + 1)); echo "ok - $name"
  else
    FAILED=$((FAILED + 1)); echo "FAIL - $name"; printf '%s\n' "$out" | tail -n 40 | sed 's/^/    /'
  fi
}

# expect_eq EXPECTED ACTUAL: for use inside check.
expect_eq() {
  [ "$1" = "$2" ] && return 0
  printf 'expected: %s\nactual:   %s\n' "$1" "$2"; return 1
}

# ---- process management ----------------------------------------------------

track() { STARTED_PIDS+=("$1:$2"); }

stop_pid() {  # stop_pid NAME PID: TERM, wait up to 30 s, then KILL
  local name=$1 pid=$2 i sig=TERM
  kill -0 "$pid" 2>/dev/null || return 0
  # TERM is PostgreSQL's "smart" shutdown, which waits for every client to go.
  [ "$name" != postgres ] || sig=INT
  kill -"$sig" "$pid" 2>/dev/null || true
  for i in $(seq 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  echo "# $name (pid $pid) ignored $sig for 30 s; sending KILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i entry mnt
  trap - EXIT
  trap "" TERM INT  # finish cleaning up even when a timeout signals us
  set +e
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    entry=${STARTED_PIDS[i]}; stop_pid "${entry%%:*}" "${entry##*:}"
  done
  # Whatever the clients did, berth must leave a consistent data folder behind.
  if [ -f "$T/berth-data/meta.db" ] && [ -x "$BERTH_BIN" ]; then
    check "berth fsck: the data folder the clients filled is clean" "$BERTH_BIN" fsck --data-dir "$T/berth-data"
  fi
  # dockerd/containerd may leave overlay or shm mounts under $T: unmount before rm.
  awk -v t="$T" 'index($2, t) == 1 {print $2}' /proc/self/mounts | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null; done
  if [ -n "${KEEP_TMP:-}" ]; then echo "# kept $T"; else rm -rf "$T" 2>/dev/null || echo "# could not fully remove $T" >&2; fi
  if [ "$rc" -ne 0 ] && [ "$FAILED" -eq 0 ]; then
    FAILED=1; echo "FAIL - script aborted (exit $rc)"
  fi
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] || exit 1
  exit 0
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# wait_for SECONDS CMD...: retry CMD every 0.5 s until it succeeds or time runs out.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- berth -----------------------------------------------------------------

v2_ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/")" = 200 ]; }

# refused NAME PATTERN CMD...: CMD must fail and say something matching
# PATTERN (berth's message, not e.g. a connection error). What the client
# said is echoed, so the log shows how each client reports it.
refused() {
  local name=$1 pattern=$2 rc=0 out; shift 2
  out=$("$@" 2>&1) || rc=$?
  echo "#   client said (exit $rc): $(printf '%s\n' "$out" | grep -iE "$pattern" | tail -n 1 | cut -c1-300)"
  check "$name" refusal_was "$rc" "$pattern" "$out"
}
refusal_was() {
  [ "$1" -ne 0 ] || { echo "exit 0: not refused"; echo "$3"; return 1; }
  # a here-string, not a pipe: grep -q stopping early must not fail the check (pipefail)
  grep -qiE "$2" <<<"$3" || { echo "output does not match /$2/:"; echo "$3"; return 1; }
}

# serve_berth LOG READY [SERVE ARGS...]: `berth serve --addr 127.0.0.1:PORT
# SERVE ARGS` on a free port, its output in LOG, until READY (a command)
# succeeds; sets PORT, REG (127.0.0.1:PORT), HOSTREG (localhost:PORT) and
# BERTH_PID. Retries on a new port if the one picked was taken in the
# meantime; on failure prints the log. Environment set before the call
# (`RUST_LOG=debug serve_berth ...`) reaches berth.
serve_berth() {
  [ -x "$BERTH_BIN" ] || { echo "berth binary not found: $BERTH_BIN (build it: cargo build --release -p berth-cli)" >&2; return 1; }
  local log=$1 ready=$2 attempt deadline; shift 2
  for attempt in 1 2 3; do
    PORT=$(free_port); REG=127.0.0.1:$PORT; HOSTREG=localhost:$PORT
    "$BERTH_BIN" serve --addr "$REG" "$@" >"$log" 2>&1 &
    BERTH_PID=$!; track berth "$BERTH_PID"
    deadline=$((SECONDS + 30))
    until $ready; do
      if ! kill -0 "$BERTH_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then break; fi
      sleep 0.2
    done
    if $ready; then echo "# berth pid $BERTH_PID on $REG ($BERTH_BIN)"; return 0; fi
    stop_pid berth "$BERTH_PID"
    grep -qi 'in use' "$log" || break
  done
  echo "berth did not become ready ($ready) on $REG within 30 s (or exited); its log:" >&2
  sed 's/^/    /' "$log" >&2
  return 1
}

# start_berth: a fresh registry in $T/berth-data (see serve_berth).
start_berth() {
  BERTH_DELETE_ENABLED=${BERTH_DELETE_ENABLED:-true} \
    serve_berth "$T/berth.log" v2_ready --data-dir "$T/berth-data"
}

# ---- dockerd / containerd --------------------------------------------------

start_dockerd() {
  export DOCKER_HOST=unix://$T/docker.sock
  dockerd --iptables=false --ip6tables=false --bridge=none --host "$DOCKER_HOST" \
    --data-root "$T/docker-data" --exec-root "$T/docker-exec" --pidfile "$T/docker.pid" \
    >"$T/dockerd.log" 2>&1 &
  track dockerd $!
  wait_for 60 docker info || { echo "dockerd did not start; its log:" >&2; tail -n 30 "$T/dockerd.log" >&2; return 1; }
  echo "# dockerd pid $! on $DOCKER_HOST"
}

start_containerd() {
  CTD_SOCK=$T/ctd.sock
  cat >"$T/containerd.toml" <<EOF
version = 2
root = "$T/ctd-root"
state = "$T/ctd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$CTD_SOCK.ttrpc"
EOF
  containerd --config "$T/containerd.toml" --address "$CTD_SOCK" \
    --root "$T/ctd-root" --state "$T/ctd-state" >"$T/containerd.log" 2>&1 &
  track containerd $!
  wait_for 30 ctr --address "$CTD_SOCK" version || { echo "containerd did not start; its log:" >&2; tail -n 30 "$T/containerd.log" >&2; return 1; }
  echo "# containerd pid $! on $CTD_SOCK"
}

# ---- registry API ------------------------------------------------------------

api() { curl -sS --max-time 30 "http://$REG/v2/$1"; }
# manifest_digest REPO REF: the Docker-Content-Digest of a HEAD on the manifest.
manifest_digest() {
  curl -sS --max-time 30 -I -H "Accept: $ACCEPT_MANIFESTS" "http://$REG/v2/$1/manifests/$2" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}'
}
manifest_body() { curl -sS --max-time 30 -H "Accept: $ACCEPT_MANIFESTS" "http://$REG/v2/$1/manifests/$2"; }
http_status() { curl -s -o /dev/null --max-time 30 -w '%{http_code}' "$@"; }

# ---- image content -------------------------------------------------------------

# make_rootfs_tar OUT [MARK]: a deterministic tar of busybox-static with a few
# applet symlinks; MARK, when given, goes into etc/mark so layers differ.
make_rootfs_tar() {
  local out=$1 mark=${2:-} dir applet
  dir=$(mktemp -d "$T/rootfs.XXXXXX")
  mkdir -p "$dir/bin" "$dir/etc"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in sh echo ls cat true; do ln -s busybox "$dir/bin/$applet"; done
  [ -z "$mark" ] || echo "$mark" >"$dir/etc/mark"
  tar -C "$dir" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out" bin etc
}

# oci_blob LAYOUT FILE: store FILE as a blob; prints "sha256:HEX SIZE".
oci_blob() {
  local hex size
  hex=$(sha256sum "$2" | cut -d' ' -f1)
  size=$(stat -c %s "$2")
  mkdir -p "$1/blobs/sha256"
  cp "$2" "$1/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

# oci_image LAYOUT ARCH ROOTFS_TAR: layer + config + manifest into LAYOUT's blobs;
# prints the manifest's "DIGEST SIZE".
oci_image() {
  local layout=$1 arch=$2 tarball=$3 work diff_id layer config
  work=$(mktemp -d "$T/oci.XXXXXX")
  diff_id=sha256:$(sha256sum "$tarball" | cut -d' ' -f1)
  gzip -n -c "$tarball" >"$work/layer.tar.gz"
  read -r -a layer <<<"$(oci_blob "$layout" "$work/layer.tar.gz")"
  printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"berth client tests"}]}' \
    "$arch" "$diff_id" >"$work/config.json"
  read -r -a config <<<"$(oci_blob "$layout" "$work/config.json")"
  printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "$OCI_MANIFEST" "${config[0]}" "${config[1]}" "${layer[0]}" "${layer[1]}" >"$work/manifest.json"
  oci_blob "$layout" "$work/manifest.json"
}

# oci_ref LAYOUT TAG MEDIATYPE DIGEST SIZE: write oci-layout and an index.json naming TAG.
oci_ref() {
  echo '{"imageLayoutVersion":"1.0.0"}' >"$1/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"%s","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}\n' \
    "$3" "$4" "$5" "$2" >"$1/index.json"
}

# make_busybox_layout LAYOUT TAG: single-arch busybox image; sets IMG_DIGEST.
make_busybox_layout() {
  local m
  make_rootfs_tar "$T/rootfs.tar"
  read -r -a m <<<"$(oci_image "$1" "$HOST_ARCH" "$T/rootfs.tar")"
  oci_ref "$1" "$2" "$OCI_MANIFEST" "${m[0]}" "${m[1]}"
  IMG_DIGEST=${m[0]}
}

# layer_digests: the layer digests of the manifest JSON on stdin, one per line.
layer_digests() { jq -r '.layers[].digest'; }

skopeo_() { timeout 300 skopeo --insecure-policy "$@"; }

# ---- berth's container image -------------------------------------------------

# build_berth_image TAG: berth's image in the local docker (DOCKER_HOST), built
# by deploy/build-image.sh from the static binary of BERTH_PROFILE (default
# release; tests/run.sh sets ci, the build it already made), without network.
build_berth_image() {
  BERTH_PROFILE=${BERTH_PROFILE:-release} "$REPO_ROOT/deploy/build-image.sh" "$1" >"$T/build-image.log" 2>&1 ||
    { tail -n 30 "$T/build-image.log"; return 1; }
}

# ---- engines: PostgreSQL and Garage (S3) -----------------------------------------
# Throwaway engines for the scripts that run berth on S3 + PostgreSQL: each
# lives in a folder under $T, listens on 127.0.0.1 only and is tracked by PID.

PG_BIN=${BERTH_PG_BIN:-/usr/lib/postgresql/15/bin}

# garage_bin: the Garage binary tests/engines/garage.sh builds once into the
# cache (or $BERTH_GARAGE).
garage_bin() {
  if [ -f "$REPO_ROOT/tests/engines/garage.sh" ]; then
    bash "$REPO_ROOT/tests/engines/garage.sh" path
  else
    echo "${BERTH_GARAGE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/garage/bin/garage}"
  fi
}

# engines_missing: prints what is missing of PostgreSQL 15 and Garage, one a line.
engines_missing() {
  [ -x "$PG_BIN/postgres" ] && [ -x "$PG_BIN/initdb" ] ||
    echo "PostgreSQL server binaries in $PG_BIN (apt-get install postgresql-15)"
  [ -x "$(garage_bin 2>/dev/null)" ] ||
    echo "Garage at $(garage_bin 2>/dev/null) (bash tests/engines/garage.sh ensure: a one-time ~12 min build)"
}

# require_engines: stop here without failing when an engine is missing, unless
# CI=true, where a missing engine is a failure.
require_engines() {
  local missing
  missing=$(engines_missing)
  [ -n "$missing" ] || return 0
  if [ "${CI:-}" = true ]; then
    FAILED=$((FAILED + 1)); echo "FAIL - engines missing:"; printf '    %s\n' "$missing"; exit 1
  fi
  echo "# skipped: engines missing:"; printf '#   %s\n' "$missing"; exit 0
}

# as_unprivileged_owner DIR: sets AS_OWNER to the command prefix that runs a
# program as an unprivileged user owning DIR (empty when not root): initdb and
# postgres refuse to run as root.
as_unprivileged_owner() {
  AS_OWNER=()
  [ "$(id -u)" -eq 0 ] || return 0
  local user=postgres
  getent passwd "$user" >/dev/null || user=nobody
  chown -R "$user:" "$1"
  # $T is private (0700); that user must be able to walk into it, not list it.
  case $1 in "$T"/*) chmod o+x "$T" ;; esac
  AS_OWNER=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups)
  "${AS_OWNER[@]}" test -w "$1" || { echo "$user cannot write $1" >&2; return 1; }
}

# start_postgres DIR: a fresh PostgreSQL cluster in DIR on a free loopback port
# (unix socket in DIR), trust auth for superuser "berth", database "berth".
# Durability is off (fsync, synchronous_commit): it is thrown away after the run.
# Sets PG_PORT, PG_PID and exports PG_URL (postgres://berth@127.0.0.1:PORT/berth).
start_postgres() {
  local dir=$1 attempt deadline
  mkdir -p "$dir"
  as_unprivileged_owner "$dir" || return 1
  "${AS_OWNER[@]}" "$PG_BIN/initdb" -D "$dir/data" -U berth --auth=trust --no-sync \
    --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
    { echo "initdb failed; its log:" >&2; tail -n 20 "$dir/initdb.log" >&2; return 1; }
  for attempt in 1 2 3; do
    PG_PORT=$(free_port)
    "${AS_OWNER[@]}" "$PG_BIN/postgres" -D "$dir/data" -k "$dir" -p "$PG_PORT" \
      -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
      -c full_page_writes=off -c max_connections=200 >"$dir/postgres.log" 2>&1 &
    PG_PID=$!; track postgres "$PG_PID"
    deadline=$((SECONDS + 30))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do
      if ! kill -0 "$PG_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then break; fi
      sleep 0.1
    done
    if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; then
      export PG_URL
      PG_URL=$(pg_database berth) || return 1
      echo "# postgres pid $PG_PID on 127.0.0.1:$PG_PORT ($PG_URL)"
      return 0
    fi
    stop_pid postgres "$PG_PID"
    grep -qi 'in use' "$dir/postgres.log" || break
  done
  echo "postgres did not start; its log:" >&2; tail -n 20 "$dir/postgres.log" >&2
  return 1
}

# pg_database NAME: creates database NAME in the cluster start_postgres started;
# prints its URL.
pg_database() {
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U berth "$1" >&2 || return 1
  echo "postgres://berth@127.0.0.1:$PG_PORT/$1"
}

# garage_config DIR RPC_SECRET REPLICATION: a node's garage.toml in DIR on free
# loopback ports; sets G_S3_PORT, G_RPC_PORT.
garage_config() {
  local dir=$1 admin
  G_S3_PORT=$(free_port) G_RPC_PORT=$(free_port) admin=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = $3
rpc_bind_addr = "127.0.0.1:$G_RPC_PORT"
rpc_public_addr = "127.0.0.1:$G_RPC_PORT"
rpc_secret = "$2"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$G_S3_PORT"

[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
  chmod 600 "$dir/garage.toml"
  echo "$G_S3_PORT" >"$dir/s3.port"
}

# garage_launch DIR [SERVER ARGS...]: `garage server` on DIR's config; its PID
# goes into DIR/pid. Returns once its RPC answers (`garage node id`).
garage_launch() {
  local dir=$1 pid deadline; shift
  "$(garage_bin)" -c "$dir/garage.toml" server "$@" >>"$dir/garage.log" 2>&1 &
  pid=$!; track garage "$pid"; echo "$pid" >"$dir/pid"
  deadline=$((SECONDS + 30))
  # `node id` answers as soon as the node key is on disk, before RPC listens
  # (80 ms here, seconds under load); `status` needs RPC.
  until "$(garage_bin)" -c "$dir/garage.toml" node id -q >"$dir/node.id" 2>/dev/null &&
    "$(garage_bin)" -c "$dir/garage.toml" status >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "garage in $dir did not start; its log:" >&2; tail -n 20 "$dir/garage.log" >&2; return 1
    fi
    sleep 0.1
  done
}

# garage_ CONFIG_DIR ARGS...: the garage CLI against the node configured in CONFIG_DIR.
garage_() { local dir=$1; shift; timeout 60 "$(garage_bin)" -c "$dir/garage.toml" "$@"; }

# garage_bucket DIR: an access key and bucket "berth" it may read, write and own,
# through the node in DIR; exports the REGISTRY_STORAGE_S3_* variables berth reads.
garage_bucket() {
  local dir=$1 key_out
  key_out=$(garage_ "$dir" key create berth-tests) || return 1
  garage_ "$dir" bucket create berth >/dev/null || return 1
  export REGISTRY_STORAGE=s3 REGISTRY_STORAGE_S3_BUCKET=berth REGISTRY_STORAGE_S3_REGION=garage \
    REGISTRY_STORAGE_S3_FORCEPATHSTYLE=true
  REGISTRY_STORAGE_S3_REGIONENDPOINT=http://127.0.0.1:$(cat "$dir/s3.port")
  REGISTRY_STORAGE_S3_ACCESSKEY=$(awk -F': *' '/^Key ID/ {print $2}' <<<"$key_out")
  REGISTRY_STORAGE_S3_SECRETKEY=$(awk -F': *' '/^Secret key/ {print $2}' <<<"$key_out")
  export REGISTRY_STORAGE_S3_REGIONENDPOINT REGISTRY_STORAGE_S3_ACCESSKEY REGISTRY_STORAGE_S3_SECRETKEY
  if [ -z "$REGISTRY_STORAGE_S3_ACCESSKEY" ] || [ -z "$REGISTRY_STORAGE_S3_SECRETKEY" ]; then
    echo "no key in garage's answer: $key_out" >&2; return 1
  fi
  garage_ "$dir" bucket allow --read --write --owner berth --key berth-tests >/dev/null || return 1
  wait_for 30 s3_ready || { echo "bucket berth not usable at $REGISTRY_STORAGE_S3_REGIONENDPOINT" >&2; return 1; }
}

# s3_ready: the exported key lists bucket berth (curl signs with SigV4).
s3_ready() {
  curl -sf --max-time 10 --aws-sigv4 "aws:amz:${REGISTRY_STORAGE_S3_REGION}:s3" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --user "$REGISTRY_STORAGE_S3_ACCESSKEY:$REGISTRY_STORAGE_S3_SECRETKEY" \
    "$REGISTRY_STORAGE_S3_REGIONENDPOINT/$REGISTRY_STORAGE_S3_BUCKET?list-type=2&max-keys=1" >/dev/null
}

# start_garage DIR: a single-node Garage (replication factor 1) in DIR with
# bucket "berth"; exports REGISTRY_STORAGE=s3 and REGISTRY_STORAGE_S3_*.
start_garage() {
  local dir=$1
  garage_config "$dir" "$(openssl rand -hex 32)" 1
  garage_launch "$dir" --single-node || return 1
  garage_bucket "$dir" || return 1
  echo "# garage pid $(cat "$dir/pid") on $REGISTRY_STORAGE_S3_REGIONENDPOINT"
}

# start_garage_cluster DIR N: N Garage nodes in DIR/node1..N on loopback, all
# in zone dc1 with 1 GB each, replication factor N; bucket "berth" made through
# node 1, whose S3 endpoint the exported variables name.
# GARAGE_NODES lists the node folders (for stop_garage_node/start_garage_node).
start_garage_cluster() {
  local dir=$1 n=$2 secret i first ids=()
  secret=$(openssl rand -hex 32) GARAGE_NODES=()
  for i in $(seq "$n"); do
    garage_config "$dir/node$i" "$secret" "$n"
    garage_launch "$dir/node$i" || return 1
    GARAGE_NODES+=("$dir/node$i")
    ids+=("$(cut -d@ -f1 "$dir/node$i/node.id")")
  done
  first=${GARAGE_NODES[0]}
  for i in $(seq 2 "$n"); do
    garage_ "$first" node connect "$(cat "$dir/node$i/node.id")" >/dev/null || return 1
  done
  garage_ "$first" layout assign -z dc1 -c 1G "${ids[@]}" >/dev/null || return 1
  garage_ "$first" layout apply --version 1 >/dev/null || return 1
  garage_bucket "$first" || return 1
  echo "# garage cluster of $n (pids $(cat "$dir"/node*/pid | tr '\n' ' ')) on $REGISTRY_STORAGE_S3_REGIONENDPOINT"
}

# stop_garage_node DIR / start_garage_node DIR: one cluster node, by its PID;
# started again on its config and data, it rejoins: start_garage_node returns
# once node 1 counts every node healthy.
stop_garage_node() { stop_pid garage "$(cat "$1/pid")"; }
start_garage_node() {
  garage_launch "$1" || return 1
  garage_ "${GARAGE_NODES[0]}" node connect "$(cat "$1/node.id")" >/dev/null || return 1
  wait_for 30 garage_all_healthy || { echo "node $1 did not rejoin" >&2; return 1; }
}
garage_all_healthy() { ! garage_ "${GARAGE_NODES[0]}" status 2>&1 | grep -q 'FAILED NODES'; }
