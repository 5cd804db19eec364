#!/usr/bin/env bash
# deploy/kubernetes: every kustomization renders with the real kubectl, passes
# strict validation against the Kubernetes 1.32 OpenAPI schemas (PyPI's
# kubernetes-validate, offline), says what berth needs (probes, non-root,
# read-only root, volume at data_dir), and its config.toml starts the real berth;
# overlays/auth wires the user's htpasswd file through a Secret into berth.
# Nothing is applied to a cluster: none can run here.
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K8S_VERSION=1.32.0
KV_VERSION=1.37.0
DEPLOY=$REPO_ROOT/deploy/kubernetes
VENV=${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/kustomize-venv

tools_present() {
  command -v kubectl >/dev/null || { echo "kubectl not on PATH (tests/deps.sh says where it comes from)"; return 1; }
  # kustomize v5 (kubectl >= 1.27) reads `labels:` and inline JSON patches as used here.
  local minor
  minor=$(kubectl version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["minor"].rstrip("+"))')
  [ "$minor" -ge 27 ] || { echo "kubectl 1.$minor is too old for kustomize v5"; return 1; }
}
check "kubectl (>= 1.27, with kustomize v5) is present" tools_present

venv_ready() {
  if ! "$VENV/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KV_VERSION"; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q "kubernetes-validate==$KV_VERSION" || return 1
  fi
  "$VENV/bin/python" -c 'import yaml'
}
check "kubernetes-validate $KV_VERSION in $VENV" venv_ready

# The validator must catch what it is trusted to catch: a misspelt field.
validator_rejects_typos() {
  printf 'apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  prots: [{port: 1}]\n' >"$T/typo.yaml"
  ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$T/typo.yaml"
}
check "kubernetes-validate --strict refuses an unknown field (control)" validator_rejects_typos

# config_starts_berth CONFIG: berth serve accepts the file (deny_unknown_fields
# makes a mistyped key fatal) and answers /v2/, with addr and data_dir
# redirected by the environment to a free local port and a temp folder.
config_starts_berth() {
  local config=$1 port pid rc=1 i
  port=$(free_port)
  BERTH_ADDR=127.0.0.1:$port BERTH_DATA_DIR=$T/data-$port \
    "$BERTH_BIN" serve --config "$config" >"$T/berth-$port.log" 2>&1 &
  pid=$!; track berth "$pid"
  for i in $(seq 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")" = 200 ]; then rc=0; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  stop_pid berth "$pid"
  [ "$rc" -eq 0 ] || sed 's/^/    berth: /' "$T/berth-$port.log"
  return "$rc"
}

render_and_check() {
  local dir=$1 service_type=$2 out=$T/${1//\//-}
  check "$dir: kubectl kustomize renders" kubectl kustomize "$DEPLOY/$dir" -o "$out.yaml"
  check "$dir: valid against Kubernetes $K8S_VERSION schemas (strict)" \
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$out.yaml"
  check "$dir: probes on /healthz and /readyz, non-root, read-only root, PVC at data_dir" \
    "$VENV/bin/python" "$REPO_ROOT/tests/clients/kustomize_check.py" "$out.yaml" "$out.toml" "$service_type"
  check "$dir: berth serve accepts the ConfigMap's config.toml and answers /v2/" config_starts_berth "$out.toml"
}

render_and_check base ClusterIP
render_and_check overlays/nodeport NodePort
render_and_check overlays/ingress-tls ClusterIP
render_and_check overlays/kind NodePort

ingress_placeholders() {
  local out=$T/overlays-ingress-tls.yaml
  grep -q 'host: registry.example.com' "$out" && grep -q 'secretName: berth-tls' "$out"
}
check "overlays/ingress-tls: host and TLS secret are the documented placeholders" ingress_placeholders

# kind-cluster.yaml maps the nodeport overlay's port to the host's 5000.
kind_mapping_matches() {
  "$VENV/bin/python" - "$DEPLOY/overlays/kind/kind-cluster.yaml" "$T/overlays-kind.yaml" <<'PY'
import sys, yaml
cluster = yaml.safe_load(open(sys.argv[1]))
assert cluster["kind"] == "Cluster" and cluster["apiVersion"] == "kind.x-k8s.io/v1alpha4", cluster
(svc,) = [d for d in yaml.safe_load_all(open(sys.argv[2])) if d and d["kind"] == "Service"]
node_port = svc["spec"]["ports"][0]["nodePort"]
maps = [m for n in cluster["nodes"] for m in n.get("extraPortMappings", [])]
assert any(m["containerPort"] == node_port and m["hostPort"] == 5000
           and m.get("listenAddress") == "127.0.0.1" for m in maps), (node_port, maps)
PY
}
check "overlays/kind: kind-cluster.yaml maps nodePort 30500 to 127.0.0.1:5000" kind_mapping_matches

# ---- overlays/auth: the htpasswd file in a Secret -------------------------------
# The overlay reads a file the user makes (git-ignored): render a copy of
# deploy/ with one made here by berth user add, never one in the repository.
AUTH_DEPLOY=$T/deploy
cp -r "$DEPLOY" "$AUTH_DEPLOY"
rm -f "$AUTH_DEPLOY/overlays/auth/htpasswd"
no_htpasswd_no_render() { ! kubectl kustomize "$AUTH_DEPLOY/overlays/auth" >/dev/null 2>&1; }
check "overlays/auth: without the user's htpasswd file it does not render" no_htpasswd_no_render
AUTH_PASSWORD=alice-$$-secret
make_htpasswd() {
  printf '%s\n' "$AUTH_PASSWORD" |
    "$BERTH_BIN" user add alice --htpasswd "$AUTH_DEPLOY/overlays/auth/htpasswd" --password-stdin
}
check "berth user add alice --htpasswd overlays/auth/htpasswd --password-stdin" make_htpasswd
DEPLOY=$AUTH_DEPLOY render_and_check overlays/auth ClusterIP

# The Secret holds the file; the pod mounts it read-only and names it.
auth_overlay_wired() {  # auth_overlay_wired [RENDERED]
  "$VENV/bin/python" - "${1:-$T/overlays-auth.yaml}" "$AUTH_DEPLOY/overlays/auth/htpasswd" "$T/auth-env" <<'PY'
import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
(secret,) = [d for d in docs if d["kind"] == "Secret"]
(dep,) = [d for d in docs if d["kind"] == "Deployment"]
meta = secret["metadata"]
assert meta["name"].startswith("berth-htpasswd-") and meta.get("namespace") == "berth", meta
assert base64.b64decode(secret["data"]["htpasswd"]) == open(sys.argv[2], "rb").read(), "Secret holds the file"
pod = dep["spec"]["template"]["spec"]
(c,) = pod["containers"]
vols = {v["name"]: v for v in pod["volumes"]}
(mount,) = [m for m in c["volumeMounts"] if vols[m["name"]].get("secret")]
vol = vols[mount["name"]]["secret"]
assert vol["secretName"] == meta["name"], ("the volume names the generated Secret", vol)
assert vol.get("defaultMode") == 0o440, vol
assert mount.get("readOnly") is True, mount
env = {e["name"]: e["value"] for e in c.get("env", [])}
assert env.get("REGISTRY_AUTH_HTPASSWD_PATH") == mount["mountPath"] + "/htpasswd", env
for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
    assert "httpHeaders" not in c[probe]["httpGet"], "probes send no credentials"
with open(sys.argv[3], "w") as f:
    f.write(env.get("REGISTRY_AUTH_HTPASSWD_REALM", ""))
PY
}
check "overlays/auth: Secret from the file, mounted read-only (0440), named by REGISTRY_AUTH_HTPASSWD_PATH" auth_overlay_wired

# berth with that config and the Deployment's variables (the path pointed at
# the local file): probes answer without credentials, /v2/ asks for them.
auth_overlay_serves() {
  local port pid rc=1 code
  port=$(free_port)
  BERTH_ADDR=127.0.0.1:$port BERTH_DATA_DIR=$T/data-auth \
    REGISTRY_AUTH_HTPASSWD_PATH=$AUTH_DEPLOY/overlays/auth/htpasswd REGISTRY_AUTH_HTPASSWD_REALM=$(cat "$T/auth-env") \
    "$BERTH_BIN" serve --config "$T/overlays-auth.toml" >"$T/berth-auth.log" 2>&1 &
  pid=$!; track berth "$pid"
  if wait_for 10 curl -sf "http://127.0.0.1:$port/healthz"; then
    rc=0
    for path in healthz readyz; do
      code=$(http_status "http://127.0.0.1:$port/$path")
      [ "$code" = 200 ] || { echo "anonymous /$path: $code"; rc=1; }
    done
    code=$(http_status "http://127.0.0.1:$port/v2/")
    [ "$code" = 401 ] || { echo "anonymous /v2/: $code"; rc=1; }
    curl -sS -o /dev/null -D - "http://127.0.0.1:$port/v2/" | tr -d '\r' | grep -qix 'www-authenticate: Basic realm="berth"' ||
      { echo "no Basic realm=\"berth\" challenge"; rc=1; }
    code=$(http_status -u "alice:$AUTH_PASSWORD" "http://127.0.0.1:$port/v2/")
    [ "$code" = 200 ] || { echo "alice on /v2/: $code"; rc=1; }
  fi
  stop_pid berth "$pid"
  [ "$rc" -eq 0 ] || sed 's/^/    berth: /' "$T/berth-auth.log"
  return "$rc"
}
check "overlays/auth: anonymous probes 200, anonymous /v2/ 401 Basic realm=\"berth\", alice 200" auth_overlay_serves
unwired_refused() {
  grep -v 'REGISTRY_AUTH_HTPASSWD_PATH' "$T/overlays-auth.yaml" | sed '/value: \/auth\/htpasswd/d' >"$T/unwired.yaml" &&
    ! auth_overlay_wired "$T/unwired.yaml" >/dev/null 2>&1
}
check "a Deployment that does not name the file fails the wiring check (control)" unwired_refused

# Controls: the checks above can fail.
typo_config_refused() {
  sed 's/^delete_enabled/delete_enabeld/' "$T/base.toml" >"$T/typo.toml"
  ! config_starts_berth "$T/typo.toml"
}
check "a config.toml with a mistyped key is refused by berth (control)" typo_config_refused

root_pod_refused() {
  sed 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "$T/base.yaml" >"$T/rw.yaml"
  ! "$VENV/bin/python" "$REPO_ROOT/tests/clients/kustomize_check.py" "$T/rw.yaml" "$T/rw.toml" >/dev/null
}
check "a writable root filesystem fails the structural check (control)" root_pod_refused
