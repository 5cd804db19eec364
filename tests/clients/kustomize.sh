#!/usr/bin/env bash
# deploy/kubernetes: every kustomization renders with the real kubectl, passes
# strict validation against the Kubernetes 1.32 OpenAPI schemas (PyPI's
# kubernetes-validate, offline), says what berth needs (probes, non-root,
# read-only root, volume at data_dir), and its config.toml starts the real berth.
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
