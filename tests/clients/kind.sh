#!/usr/bin/env bash
# berth kind up/down/config. No KinD cluster can start here (kind cannot be
# installed, no node image, no bridge networks), so: the generated cluster
# config and ConfigMap against their schemas; the registry container started
# for real by the real dockerd in the Linux-only `--network host` mode, pushed
# to and pulled from; and the orchestration through recording stand-ins for
# kind and kubectl (and a recording docker wrapper) first on PATH, with the
# exact calls of up, a second up, down and down --purge.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$REPO_ROOT/tests/clients/kind

# ---- the generated pieces against their schemas ------------------------------

VENV=${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/kind-venv
venv_ready() { "$VENV/bin/python" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; }
if ! venv_ready; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q kubernetes-validate jsonschema pyyaml
fi
config_() { "$BERTH_BIN" kind config "$@"; }

check "berth kind config --only cluster is a valid kind v1alpha4 Cluster that sets config_path" \
  bash -c '"$1" kind config --only cluster --workers 2 | "$2" "$3"' _ "$BERTH_BIN" "$VENV/bin/python" "$HERE/check_cluster_config.py"
# The check itself must be able to fail: an unknown field and a bad role are refused.
bad_cluster() {
  printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: master\nbogus: 1\n' |
    "$VENV/bin/python" "$HERE/check_cluster_config.py" >/dev/null && return 1 || return 0
}
check "the cluster schema check refuses an unknown field and role" bad_cluster
check "berth kind config --only configmap validates against Kubernetes 1.32 (kubernetes-validate, strict)" \
  bash -c '"$1" kind config --only configmap --port 5999 > "$3/cm.yaml" && "$2" --strict -k 1.32.0 "$3/cm.yaml"' _ \
  "$BERTH_BIN" "$VENV/bin/kubernetes-validate" "$T"
hosts_toml_parses() {
  config_ --only hosts-toml --port 5999 --endpoint http://127.0.0.1:4000 >"$T/hosts.toml" &&
    expect_eq "http://127.0.0.1:4000 ['pull', 'resolve']" \
      "$("$VENV/bin/python" -c 'import sys, tomllib; d = tomllib.load(open(sys.argv[1], "rb")); print(d["server"], d["host"]["http://127.0.0.1:4000"]["capabilities"])' "$T/hosts.toml")"
}
check "berth kind config --only hosts-toml is exactly a hosts.toml with the --endpoint" hosts_toml_parses
refuses_spaces() {
  local out
  out=$("$BERTH_BIN" kind up --name "my cluster" 2>&1) && return 1
  grep -q 'cannot hold spaces' <<<"$out" || { echo "$out"; return 1; }
  out=$("$BERTH_BIN" kind config --registry-name "my registry" 2>&1) && return 1
  grep -q 'cannot hold spaces' <<<"$out" || { echo "$out"; return 1; }
}
check "cluster and container names with spaces are refused with a message" refuses_spaces

# ---- the real registry container, orchestrated through stand-ins -----------------

start_dockerd
IMAGE=berth-kind-test:latest
check "berth's image builds (deploy/build-image.sh)" build_berth_image "$IMAGE"

export REAL_DOCKER FAKE_CALL_LOG=$T/calls.log FAKE_KIND_STATE=$T/kind-state FAKE_PYTHON=$VENV/bin/python
REAL_DOCKER=$(command -v docker)
export PATH=$HERE/bin:$PATH XDG_STATE_HOME=$T/state
mkdir -p "$FAKE_KIND_STATE"
PORT=$(free_port)
UP=(kind up --network host --port "$PORT" --image "$IMAGE")

# calls: the log since the last call of calls, with the port and volume spelled out.
calls() {
  local all
  all=$(cat "$FAKE_CALL_LOG" 2>/dev/null || true); : >"$FAKE_CALL_LOG"
  printf '%s\n' "$all" | sed -e "s/$PORT/PORT/g"
}
# run_berth NAME ARGS...: run berth, keep its output in $T/NAME.out, succeed with it.
run_berth() { local n=$1; shift; "$BERTH_BIN" "$@" >"$T/$n.out" 2>&1 || { cat "$T/$n.out"; return 1; }; }
: >"$FAKE_CALL_LOG"

check "berth kind up (registry, cluster, hosts.toml, ConfigMap)" run_berth up1 "${UP[@]}"
cat "$T/up1.out" | sed 's/^/    # /'
UP1_CALLS=$(calls)
expect_up1=$(cat <<'EOF2'
docker container inspect kind-registry
kind get clusters
docker image inspect --format {{.Id}} berth-kind-test:latest
docker run -d --name kind-registry --restart=always --label io.github.berth.kind.port=PORT --network host -e BERTH_ADDR=127.0.0.1:PORT -e BERTH_DATA_DIR=/var/lib/registry --mount type=volume,source=kind-registry-data,target=/var/lib/registry berth-kind-test:latest serve
kind create cluster --name kind --config -
kind get nodes --name kind
docker exec kind-control-plane mkdir -p /etc/containerd/certs.d/localhost:PORT
docker exec -i kind-control-plane cp /dev/stdin /etc/containerd/certs.d/localhost:PORT/hosts.toml
docker exec kind-worker mkdir -p /etc/containerd/certs.d/localhost:PORT
docker exec -i kind-worker cp /dev/stdin /etc/containerd/certs.d/localhost:PORT/hosts.toml
kubectl --context kind-kind apply -f -
EOF2
)
check "up: exactly the expected kind, kubectl and docker calls" expect_eq "$expect_up1" "$UP1_CALLS"
REG=127.0.0.1:$PORT HOSTREG=localhost:$PORT
check "the registry container answers /v2/ on 127.0.0.1:PORT" v2_ready
check "it runs as the image's non-root user" expect_eq "65532:65532" "$(docker inspect -f '{{.Config.User}}' kind-registry)"
check "it restarts always" expect_eq always "$(docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' kind-registry)"
nodes_have_hosts_toml() {
  local want node
  want=$(config_ --only hosts-toml --port "$PORT" --endpoint "http://127.0.0.1:$PORT")
  for node in kind-control-plane kind-worker; do
    expect_eq "$want" "$(cat "$FAKE_KIND_STATE/nodes/$node/fs/etc/containerd/certs.d/localhost:$PORT/hosts.toml")" || return 1
  done
}
check "every node got the hosts.toml berth kind config prints" nodes_have_hosts_toml
check "kind create cluster was given the config with config_path" \
  bash -c '"$1" "$2" < "$3"' _ "$VENV/bin/python" "$HERE/check_cluster_config.py" "$FAKE_KIND_STATE/clusters/kind/config.yaml"
check "kubectl apply was given the local-registry-hosting ConfigMap" \
  expect_eq "$(config_ --only configmap --port "$PORT" --endpoint "http://127.0.0.1:$PORT")" "$(cat "$FAKE_KIND_STATE/configmap-kind-kind.yaml")"

make_rootfs_tar "$T/rootfs.tar"
IMG=$HOSTREG/busybox:latest
check "docker import busybox" docker import "$T/rootfs.tar" "$IMG"
check "docker push $IMG to the registry container" timeout 120 docker push "$IMG"
pull_back() { docker rmi "$IMG" >/dev/null && timeout 120 docker pull "$IMG" >/dev/null && docker image inspect "$IMG" >/dev/null; }
check "docker rmi, then pull it back from the registry container" pull_back
# The hosts.toml up wrote into a node, used by a real containerd as a node's would.
start_containerd
check "ctr pulls $IMG through the hosts.toml up wrote into kind-control-plane" \
  timeout 300 ctr --address "$CTD_SOCK" -n kind images pull \
  --hosts-dir "$FAKE_KIND_STATE/nodes/kind-control-plane/fs/etc/containerd/certs.d" "$IMG"
: >"$FAKE_CALL_LOG"

check "a second berth kind up succeeds" run_berth up2 "${UP[@]}"
expect_up2=$(cat <<'EOF2'
docker container inspect kind-registry
kind get clusters
kind get nodes --name kind
docker exec kind-control-plane cat /etc/containerd/certs.d/localhost:PORT/hosts.toml
docker exec kind-control-plane containerd config dump
docker exec kind-worker cat /etc/containerd/certs.d/localhost:PORT/hosts.toml
docker exec kind-worker containerd config dump
docker image inspect --format {{.Id}} berth-kind-test:latest
kubectl --context kind-kind -n kube-public get configmap local-registry-hosting -o jsonpath={.data.localRegistryHosting\.v1}
EOF2
)
check "second up: only read-only calls, exactly these" expect_eq "$expect_up2" "$(calls)"
check "second up says nothing changed" grep -q '^Nothing to do' "$T/up2.out"

check "berth kind down" run_berth down1 kind down
expect_down=$(cat <<'EOF2'
docker container inspect kind-registry
kind get clusters
docker volume inspect kind-registry-data
docker rm -f kind-registry
kind delete cluster --name kind
EOF2
)
check "down: exactly the expected calls (no volume rm)" expect_eq "$expect_down" "$(calls)"
check "down removed the registry container" bash -c '! docker container inspect kind-registry >/dev/null 2>&1'
check "down deleted the cluster up created" expect_eq "" "$(ls "$FAKE_KIND_STATE/clusters")"
check "down kept the data volume" docker volume inspect kind-registry-data

check "berth kind up again after down" run_berth up3 "${UP[@]}"
calls >/dev/null
check "the image pushed before down is still served" \
  expect_eq '{"name":"busybox","tags":["latest"]}' "$(curl -sS --max-time 30 "http://$REG/v2/busybox/tags/list")"
check "berth kind down --purge" run_berth down2 kind down --purge
check "down --purge: the same calls plus docker volume rm" \
  expect_eq "$expect_down"$'\n'"docker volume rm kind-registry-data" "$(calls)"
check "down --purge removed the data volume" bash -c '! docker volume inspect kind-registry-data >/dev/null 2>&1'
calls >/dev/null
check "a down with nothing recorded changes nothing" run_berth down3 kind down
check "... and makes no calls" expect_eq "" "$(calls)"

# ---- attaching to clusters berth did not create ----------------------------------

kind create cluster --name dev --config - <<<"$(config_ --only cluster --name dev)" && calls >/dev/null
check "berth kind up --name dev attaches to an existing cluster" run_berth attach kind up --name dev --network host --port "$PORT" --image "$IMAGE"
attach_calls=$(calls)
check "attach: no kind create, hosts.toml written on its nodes" bash -c \
  '! grep -q "kind create" <<<"$1" && grep -q "cp /dev/stdin /etc/containerd/certs.d/localhost:PORT/hosts.toml" <<<"$1" && test -f "$2"' _ \
  "$attach_calls" "$FAKE_KIND_STATE/nodes/dev-control-plane/fs/etc/containerd/certs.d/localhost:$PORT/hosts.toml"
check "berth kind down --name dev" run_berth attach-down kind down --name dev
expect_attach_down=$(cat <<'EOF2'
docker container inspect kind-registry
kind get clusters
docker exec dev-control-plane cat /etc/containerd/certs.d/localhost:PORT/hosts.toml
docker exec dev-worker cat /etc/containerd/certs.d/localhost:PORT/hosts.toml
docker volume inspect kind-registry-data
docker exec dev-control-plane rm -rf /etc/containerd/certs.d/localhost:PORT
docker exec dev-worker rm -rf /etc/containerd/certs.d/localhost:PORT
kubectl --context kind-dev -n kube-public delete configmap local-registry-hosting --ignore-not-found
docker rm -f kind-registry
EOF2
)
check "down after attaching: undoes its files, never deletes the cluster" expect_eq "$expect_attach_down" "$(calls)"
check "the attached cluster is still there" test -d "$FAKE_KIND_STATE/clusters/dev"
docker volume rm kind-registry-data >/dev/null 2>&1 || true

printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n' | kind create cluster --name old --config - && calls >/dev/null
refuses_old() {
  local out
  out=$("$BERTH_BIN" kind up --name old --network host --port "$PORT" --image "$IMAGE" 2>&1) && { echo "$out"; return 1; }
  grep -q 'does not read /etc/containerd/certs.d' <<<"$out" && grep -q 'kind create cluster --config' <<<"$out" ||
    { echo "$out"; return 1; }
  ! grep -qE '^docker run|^docker exec -i|^kubectl .* apply' <<<"$(calls)"
}
check "a cluster whose containerd ignores certs.d is refused before anything changes" refuses_old

# ---- --auth: a user for the nodes, credentials in their containerd config -------------

PORT3=$(free_port)
UPA=(kind up --name secure --registry-name secure-registry --network host --port "$PORT3" --image "$IMAGE" --auth)
PWFILE=$T/state/berth/kind/secure-registry-kind.password
calls >/dev/null
check "berth kind up --auth" run_berth auth-up "${UPA[@]}"
sed 's/^/    # /' "$T/auth-up.out"
AUTH_PW=$(cat "$PWFILE" 2>/dev/null || true)
pw_file_private() {
  expect_eq 600 "$(stat -c %a "$PWFILE")" && [[ $AUTH_PW =~ ^[0-9a-f]{64}$ ]] || { echo "password: $AUTH_PW"; return 1; }
}
check "the password is 64 hex digits in a 0600 file in the state folder" pw_file_private
check "up --auth says how to docker login and where the password is kept" \
  grep -qF "docker login localhost:$PORT3 -u kind --password-stdin < '$PWFILE'" "$T/auth-up.out"
auth_calls_ok() {
  local c; c=$(calls)
  grep -qxF "docker run --rm -i --network none --mount type=volume,source=secure-registry-data,target=/var/lib/registry $IMAGE user add kind --htpasswd /var/lib/registry/htpasswd --password-stdin" <<<"$c" &&
    grep -qF -- "--label io.github.berth.kind.auth-user=kind -e REGISTRY_AUTH_HTPASSWD_PATH=/var/lib/registry/htpasswd" <<<"$c" &&
    ! grep -qF "$AUTH_PW" <<<"$c" || { echo "$c"; return 1; }
}
check "up --auth: berth user add in the image on the data volume, then serve with REGISTRY_AUTH_HTPASSWD_PATH; no password in any argument" auth_calls_ok
pw_not_inspectable() { ! docker inspect secure-registry | grep -qF "$AUTH_PW"; }
check "the password is not in docker inspect of the registry container" pw_not_inspectable
REG=127.0.0.1:$PORT3
challenge() {
  expect_eq 401 "$(http_status "http://$REG/v2/")" &&
    curl -sS -o /dev/null -D - "http://$REG/v2/" | tr -d '\r' | grep -qi '^www-authenticate: Basic realm='
}
check "the registry container asks for credentials (401, Basic)" challenge
login_push() {
  timeout 60 docker login "localhost:$PORT3" -u kind --password-stdin <"$PWFILE" >/dev/null &&
    docker tag "$IMG" "localhost:$PORT3/busybox:latest" && timeout 120 docker push "localhost:$PORT3/busybox:latest" >/dev/null
}
check "docker login with the printed command, then push" login_push
# More users, as the README says: berth user add inside the running container.
add_alice() {
  printf 'alice-%s\n' "$$" | docker exec -i secure-registry /berth user add alice --htpasswd /var/lib/registry/htpasswd --password-stdin >/dev/null &&
    wait_for 10 bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" -u "alice:alice-$1" "http://$2/v2/")" = 200 ]' _ "$$" "$REG"
}
check "docker exec -i REGISTRY /berth user add alice: alice logs in without a restart" add_alice
nodes_have_credentials() {
  "$VENV/bin/python" - "$FAKE_KIND_STATE/clusters/secure/config.yaml" "127.0.0.1:$PORT3" "$AUTH_PW" <<'PY'
import sys, tomllib, yaml
config = yaml.safe_load(open(sys.argv[1]))
(patch,) = config["containerdConfigPatches"]
auth = tomllib.loads(patch)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["configs"][sys.argv[2]]["auth"]
assert auth == {"username": "kind", "password": sys.argv[3]}, auth
PY
}
check "kind create cluster got containerdConfigPatches with the credentials for 127.0.0.1:PORT" nodes_have_credentials
check "... and that cluster config is still a valid kind Cluster" \
  bash -c '"$1" "$2" < "$3"' _ "$VENV/bin/python" "$HERE/check_cluster_config.py" "$FAKE_KIND_STATE/clusters/secure/config.yaml"
config_matches() {
  expect_eq "$(cat "$FAKE_KIND_STATE/clusters/secure/config.yaml")" \
    "$(config_ --name secure --registry-name secure-registry --port "$PORT3" --endpoint "http://127.0.0.1:$PORT3" --auth --only cluster)"
}
check "berth kind config --auth prints that same cluster config (the saved password)" config_matches
# A real containerd pulls with those credentials through the hosts.toml up wrote.
ctr_pull_auth() {
  timeout 300 ctr --address "$CTD_SOCK" -n kind images pull --user "kind:$AUTH_PW" \
    --hosts-dir "$FAKE_KIND_STATE/nodes/secure-control-plane/fs/etc/containerd/certs.d" "localhost:$PORT3/busybox:latest" >/dev/null
}
check "ctr pulls localhost:PORT/busybox with the saved credentials" ctr_pull_auth
ctr_pull_anonymous() {
  ! timeout 120 ctr --address "$CTD_SOCK" -n kind-anon images pull \
    --hosts-dir "$FAKE_KIND_STATE/nodes/secure-control-plane/fs/etc/containerd/certs.d" "localhost:$PORT3/busybox:latest" >/dev/null 2>&1
}
check "... and is refused without them" ctr_pull_anonymous
check "a second up --auth changes nothing" run_berth auth-up2 "${UPA[@]}"
check "... and says so, including the nodes' credentials and the registry accepting the password" bash -c \
  'grep -q "^Nothing to do" "$1" && grep -q "= the nodes have the credentials of user kind" "$1" && grep -q "= the registry accepts the saved password" "$1"' _ "$T/auth-up2.out"
# The registry's htpasswd no longer holds the saved password (changed by hand,
# or a data volume from before): up asks the registry and sets it again.
kind_status() { curl -s -o /dev/null -w '%{http_code}' -u "kind:$AUTH_PW" "http://$REG/v2/"; }
up_resets_password() {
  printf 'something-else\n' | docker exec -i secure-registry /berth user add kind --htpasswd /var/lib/registry/htpasswd --password-stdin >/dev/null &&
    wait_for 10 bash -c '[ "$("$@")" = 401 ]' _ kind_status_cmd "$AUTH_PW" "$REG" &&
    "$BERTH_BIN" "${UPA[@]}" >"$T/auth-up3.out" 2>&1 &&
    grep -q "+ set a new password for user kind in registry container secure-registry" "$T/auth-up3.out" &&
    expect_eq 200 "$(kind_status)" || { cat "$T/auth-up3.out"; return 1; }
}
kind_status_cmd() { curl -s -o /dev/null -w '%{http_code}' -u "kind:$1" "http://$2/v2/"; }
export -f kind_status_cmd
check "up --auth sets the saved password again when the registry refuses it" up_resets_password
calls >/dev/null
no_auth_refused() {
  local out
  out=$("$BERTH_BIN" kind up --name secure --registry-name secure-registry --network host --port "$PORT3" --image "$IMAGE" 2>&1) && { echo "$out"; return 1; }
  grep -q 'serves with auth for user kind, not without auth' <<<"$out" || { echo "$out"; return 1; }
}
check "up without --auth on a registry serving with auth is refused with the way out" no_auth_refused
check "berth kind down --name secure --purge" run_berth auth-down kind down --name secure --purge
check "down removed the password file" test ! -e "$PWFILE"
check "... and the registry container" bash -c '! docker container inspect secure-registry >/dev/null 2>&1'
docker logout "localhost:$PORT3" >/dev/null 2>&1 || true

# An existing cluster made without the credentials: refused before anything changes.
kind create cluster --name plain --config - <<<"$(config_ --only cluster --name plain)" && calls >/dev/null
refuses_plain() {
  local out
  out=$("$BERTH_BIN" kind up --name plain --registry-name plain-registry --network host --port "$(free_port)" --image "$IMAGE" --auth 2>&1) && { echo "$out"; return 1; }
  grep -q 'has no credentials for the registry' <<<"$out" && grep -q 'berth kind config --name plain --auth --only cluster' <<<"$out" ||
    { echo "$out"; return 1; }
  ! grep -qE '^docker run|^docker exec -i|^kubectl .* apply' <<<"$(calls)"
}
check "up --auth on a cluster whose nodes lack the credentials is refused before anything changes" refuses_plain
kind delete cluster --name plain && calls >/dev/null

# ---- --mirror: berth caches other registries for the nodes -------------------------
# An upstream registry on the host (a plain berth) holding an image as
# up.test/team/app:v1; `up --mirror up.test=URL --mirror docker.io` starts the
# registry container with an [[upstream]] for each, writes their hosts.toml on
# every node; a real containerd pulls up.test/... through the node's files.

calls >/dev/null
mirror_not_a_host() {
  local out
  out=$("$BERTH_BIN" kind up --network host --port "$(free_port)" --image "$IMAGE" --mirror https://docker.io 2>&1) && { echo "$out"; return 1; }
  grep -qF -- '--mirror "https://docker.io" is not a registry host name' <<<"$out" || { echo "$out"; return 1; }
  expect_eq "" "$(calls)"
}
check "--mirror with a URL instead of a registry host name: refused, saying the form, before any call" mirror_not_a_host
# config_mirrors: every hosts.toml `berth kind config --mirror` prints, each
# under a header naming its path, as TOML naming berth as the pulling host.
config_mirrors() {
  config_ --mirror docker.io --mirror ghcr.io >"$T/mirror-config.out" &&
    "$VENV/bin/python" - "$T/mirror-config.out" <<'PY'
import re, sys, tomllib
text = open(sys.argv[1]).read()
parts = re.split(r"^# (/etc/containerd/certs\.d/[^ ]+/hosts\.toml) on every node\n", text, flags=re.M)
files = {}
for path, body in zip(parts[1::2], parts[2::2]):
    files[path] = tomllib.loads(body.split("\n# ", 1)[0])
want = {"localhost:5000": "http://kind-registry:5000", "docker.io": "https://registry-1.docker.io", "ghcr.io": "https://ghcr.io"}
assert sorted(files) == sorted(f"/etc/containerd/certs.d/{r}/hosts.toml" for r in want), sorted(files)
for registry, server in want.items():
    f = files[f"/etc/containerd/certs.d/{registry}/hosts.toml"]
    assert f["server"] == server, (registry, f)
    assert f["host"] == {"http://kind-registry:5000": {"capabilities": ["pull", "resolve"]}}, (registry, f)
ups = tomllib.loads(text.split("(BERTH_CONFIG=/etc/berth/kind.toml)\n", 1)[1].split("\n# kubectl", 1)[0])["upstream"]
assert ups == [{"name": "docker.io", "url": "https://registry-1.docker.io"}, {"name": "ghcr.io", "url": "https://ghcr.io"}], ups
PY
}
check "berth kind config --mirror docker.io --mirror ghcr.io: each hosts.toml under a header naming its path, and berth's [[upstream]]s" config_mirrors

UPORT=$(free_port)
"$BERTH_BIN" serve --addr "127.0.0.1:$UPORT" --data-dir "$T/upstream-data" >"$T/upstream.log" 2>&1 &
track upstream-berth $!
check "an upstream registry (a plain berth) answers on 127.0.0.1:UPORT" \
  wait_for 30 bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$1/v2/")" = 200 ]' _ "$UPORT"
check "push team/app:v1 into the upstream" bash -c \
  'docker tag "$1" "$2" && timeout 120 docker push "$2" >/dev/null' _ "$IMG" "127.0.0.1:$UPORT/team/app:v1"
PORTM=$(free_port)
UPSTREAM=up.test=http://127.0.0.1:$UPORT
MIRRORS=(--mirror "$UPSTREAM" --mirror docker.io)
UPM=(kind up --name mirrored --registry-name mirror-registry --network host --port "$PORTM" --image "$IMAGE" "${MIRRORS[@]}")
MCONF=$T/state/berth/kind/mirror-registry.d/berth.toml
calls >/dev/null
check "berth kind up --mirror up.test=URL --mirror docker.io" run_berth mirror-up "${UPM[@]}"
sed 's/^/    # /' "$T/mirror-up.out"
mirror_run_call() {
  grep -qxF "docker run -d --name mirror-registry --restart=always --label io.github.berth.kind.port=$PORTM --label io.github.berth.kind.mirrors=docker.io=https://registry-1.docker.io,up.test=http://127.0.0.1:$UPORT -e BERTH_CONFIG=/etc/berth/kind.toml --mount type=bind,source=$MCONF,target=/etc/berth/kind.toml,readonly --network host -e BERTH_ADDR=127.0.0.1:$PORTM -e BERTH_DATA_DIR=/var/lib/registry --mount type=volume,source=mirror-registry-data,target=/var/lib/registry $IMAGE serve" \
    <<<"$(cat "$FAKE_CALL_LOG")" || { cat "$FAKE_CALL_LOG"; return 1; }
}
check "up --mirror: docker run labels the mirrors and mounts berth's config file read-only at BERTH_CONFIG" mirror_run_call
check "the mounted file is what berth kind config --only berth-config prints" \
  expect_eq "$(config_ --only berth-config "${MIRRORS[@]}")" "$(cat "$MCONF")"
nodes_have_mirror_hosts() {
  local node mirror want
  for node in mirrored-control-plane mirrored-worker; do
    for mirror in "$UPSTREAM" docker.io; do
      want=$(config_ --only mirror-hosts-toml --port "$PORTM" --endpoint "http://127.0.0.1:$PORTM" --mirror "$mirror")
      expect_eq "$want" "$(cat "$FAKE_KIND_STATE/nodes/$node/fs/etc/containerd/certs.d/${mirror%%=*}/hosts.toml")" || return 1
    done
    test -f "$FAKE_KIND_STATE/nodes/$node/fs/etc/containerd/certs.d/localhost:$PORTM/hosts.toml" || return 1
  done
}
check "every node got certs.d/up.test and certs.d/docker.io hosts.toml as kind config prints them, besides localhost:PORT's" nodes_have_mirror_hosts
MREG=127.0.0.1:$PORTM
ctr_pull_through_mirror() {
  timeout 120 ctr --address "$CTD_SOCK" -n mirrored images pull \
    --hosts-dir "$FAKE_KIND_STATE/nodes/mirrored-control-plane/fs/etc/containerd/certs.d" up.test/team/app:v1 >/dev/null
}
check "ctr pulls up.test/team/app:v1 through the hosts.toml up wrote (containerd adds ?ns=up.test)" ctr_pull_through_mirror
check "... through the registry container, which now holds up.test/team/app" \
  expect_eq '{"name":"up.test/team/app","tags":["v1"]}' "$(curl -sS --max-time 30 "http://$MREG/v2/up.test/team/app/tags/list")"
cache_hit() {
  curl -sS --max-time 30 -o /dev/null -D - -H "Accept: $ACCEPT_MANIFESTS" "http://$MREG/v2/up.test/team/app/manifests/v1" |
    tr -d '\r' | grep -qi '^berth-cache: hit'
}
check "... and serves it again from its cache (Berth-Cache: hit)" cache_hit
calls >/dev/null
check "a second up --mirror (same mirrors, any order) changes nothing" bash -c \
  '"$1" kind up --name mirrored --registry-name mirror-registry --network host --port "$2" --image "$3" --mirror docker.io --mirror "$4" >"$5" && grep -q "^Nothing to do" "$5" && grep -q "has the 3 hosts.toml files" "$5"' _ \
  "$BERTH_BIN" "$PORTM" "$IMAGE" "$UPSTREAM" "$T/mirror-up2.out"
mirrors_differ() {
  local out
  out=$("$BERTH_BIN" kind up --name mirrored --registry-name mirror-registry --network host --port "$PORTM" --image "$IMAGE" --mirror docker.io 2>&1) && { echo "$out"; return 1; }
  grep -qF "caches mirrors docker.io=https://registry-1.docker.io, up.test=http://127.0.0.1:$UPORT, not mirrors docker.io=https://registry-1.docker.io" <<<"$out" &&
    grep -qF "docker rm -f mirror-registry" <<<"$out" || { echo "$out"; return 1; }
}
check "up with other mirrors than the running registry's: refused, saying how to restart it" mirrors_differ
# Another cluster berth attaches to, sharing the registry: down removes its
# mirror folders from the nodes and keeps the registry the first cluster uses.
kind create cluster --name mattach --config - <<<"$(config_ --only cluster --name mattach)" && calls >/dev/null
check "up --name mattach --mirror ... attaches to an existing cluster with the same registry" \
  run_berth mattach kind up --name mattach --registry-name mirror-registry --network host --port "$PORTM" --image "$IMAGE" "${MIRRORS[@]}"
calls >/dev/null
check "berth kind down --name mattach" run_berth mattach-down kind down --name mattach
mattach_down_calls() {
  local c; c=$(calls)
  for dir in "localhost:PORT" up.test docker.io; do
    for node in mattach-control-plane mattach-worker; do
      grep -qxF "docker exec $node rm -rf /etc/containerd/certs.d/${dir/PORT/$PORTM}" <<<"$c" || { echo "$c"; return 1; }
    done
  done
  test ! -e "$FAKE_KIND_STATE/nodes/mattach-worker/fs/etc/containerd/certs.d/up.test" && test -f "$MCONF" &&
    ! grep -q "docker rm" <<<"$c" || { echo "$c"; return 1; }
}
check "down after attaching removes certs.d/localhost:PORT, up.test and docker.io on its nodes, keeps the shared registry" mattach_down_calls
kind delete cluster --name mattach && calls >/dev/null
check "berth kind down --name mirrored --purge" run_berth mirror-down kind down --name mirrored --purge
check "... removed the registry container and its config file" bash -c \
  '! docker container inspect mirror-registry >/dev/null 2>&1 && test ! -e "$1" && test ! -e "$(dirname "$1")"' _ "$MCONF"

# ---- refusals and a data folder with spaces ------------------------------------------

TAKEN=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(600)' "$TAKEN" &
track port-holder $!
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$TAKEN"
calls >/dev/null
port_taken() {
  local out
  out=$("$BERTH_BIN" kind up --network host --port "$TAKEN" --image "$IMAGE" 2>&1) && { echo "$out"; return 1; }
  grep -qE "port $TAKEN on 127.0.0.1 is taken .*--port [0-9]+" <<<"$out" || { echo "$out"; return 1; }
  ! grep -q '^docker run' <<<"$(calls)"
}
check "a port taken by another process: non-zero exit suggesting a free --port" port_taken

no_image() {
  local out
  out=$("$BERTH_BIN" kind up --network host --port "$(free_port)" --image berth-absent:1 2>&1) && { echo "$out"; return 1; }
  grep -q 'deploy/build-image.sh' <<<"$out" || { echo "$out"; return 1; }
}
check "a missing image: non-zero exit saying how to build it" no_image
calls >/dev/null

PORT2=$(free_port)
DATA="$T/registry data with spaces"
check "berth kind up --data-dir with spaces in the path" \
  run_berth spaces kind up --name spaces --registry-name spaces-registry --network host --port "$PORT2" --image "$IMAGE" --data-dir "$DATA"
push_into_dir() {
  docker tag "$IMG" "localhost:$PORT2/busybox:latest" && timeout 120 docker push "localhost:$PORT2/busybox:latest" >/dev/null &&
    test -f "$DATA/meta.db" && [ -n "$(find "$DATA" -type f -size +100k)" ]
}
check "a push lands in the folder with spaces" push_into_dir
check "berth kind down --name spaces keeps the folder" bash -c 'run() { "$1" kind down --name spaces --purge; }; run "$1" && test -f "$2/meta.db"' _ "$BERTH_BIN" "$DATA"
check "... and removed its container" bash -c '! docker container inspect spaces-registry >/dev/null 2>&1'

# ---- one registry for two clusters; a missing tool ---------------------------------

UPN=(kind up --network host --port "$PORT" --image "$IMAGE" --name)
check "up for clusters one and two share one registry container" bash -c \
  '"$1" "${@:3}" one >/dev/null && "$1" "${@:3}" two > "$2" && grep -q "= registry container kind-registry is running" "$2"' _ \
  "$BERTH_BIN" "$T/two.out" "${UPN[@]}"
check "down --name one --purge keeps the registry cluster two still uses" bash -c \
  '"$1" kind down --name one --purge && "$2" container inspect kind-registry >/dev/null && "$2" volume inspect kind-registry-data >/dev/null' _ \
  "$BERTH_BIN" "$REAL_DOCKER"
check "down --name two --purge then removes it and its data" bash -c \
  '"$1" kind down --name two --purge && ! "$2" container inspect kind-registry >/dev/null 2>&1 && ! "$2" volume inspect kind-registry-data >/dev/null 2>&1' _ \
  "$BERTH_BIN" "$REAL_DOCKER"

mkdir -p "$T/no-kubectl"
ln -s "$HERE/bin/docker" "$T/no-kubectl/docker"
ln -s "$HERE/bin/kind" "$T/no-kubectl/kind"
calls >/dev/null
missing_kubectl() {
  local out
  out=$(PATH=$T/no-kubectl "$BERTH_BIN" "${UP[@]}" 2>&1) && { echo "$out"; return 1; }
  grep -q '`kubectl` is not on PATH' <<<"$out" || { echo "$out"; return 1; }
  expect_eq "" "$(calls)"
}
check "kubectl missing: an error naming it, before any call" missing_kubectl
