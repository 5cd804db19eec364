#!/usr/bin/env bash
# Install the real clients the acceptance tests drive (Debian 12, apt). Idempotent:
# apt-get runs only when something is missing. With CI=true a client that is still
# missing afterwards is an error; elsewhere it is a warning.
set -euo pipefail

# command → Debian package that provides it
declare -A PROVIDES=(
  [docker]=docker.io [dockerd]=docker.io [runc]=runc [podman]=podman [skopeo]=skopeo
  [containerd]=containerd [ctr]=containerd [curl]=curl [jq]=jq [python3]=python3
  [fusermount3]=fuse3 [docker-registry]=docker-registry
  # auth.sh: Apache's htpasswd writes part of the htpasswd file (existing files must work);
  # pull_through.sh: htpasswd -Bbn writes the Basic upstream's file, docker-registry is two of its upstreams
  [htpasswd]=apache2-utils
  # deploy/build-image.sh: Debian's docker CLI builds without buildx; readelf checks the static binary, objcopy strips it
  [/usr/bin/docker]=docker.io [readelf]=binutils [objcopy]=binutils
  # tests/browser: Debian's Chromium driven by playwright-core (npm); zstd makes a zstd layer
  [/usr/bin/chromium]=chromium [node]=nodejs [npm]=npm [zstd]=zstd
  # tests/browser/login.test.mjs: htpasswd -B writes its users
  [htpasswd]=apache2-utils
  # TempPostgres (crates/registry/src/testing/engines): initdb, postgres, pg_isready, createdb
  [/usr/lib/postgresql/15/bin/postgres]=postgresql-15
)

missing_packages() {
  local cmd
  for cmd in "${!PROVIDES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || echo "${PROVIDES[$cmd]}"
  done
  # cri.sh, kind.sh and kustomize.sh keep their PyPI tools in venvs (Debian splits venv/ensurepip out)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || echo python3-venv
  # the busybox rootfs must be the static build (it runs in an empty image)
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || echo busybox-static
}

mapfile -t want < <(missing_packages | sort -u)
if [ "${#want[@]}" -gt 0 ]; then
  echo "deps: installing ${want[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: not root, cannot apt-get install ${want[*]}" >&2
  else
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${want[@]}" >/dev/null
  fi
fi

mapfile -t still < <(missing_packages | sort -u)
if [ "${#still[@]}" -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "deps: ERROR: still missing after install: ${still[*]} (a missing real client is a test failure)" >&2
    exit 1
  fi
  echo "deps: WARNING: missing ${still[*]}; the client tests that need them will fail" >&2
else
  echo "deps: all clients present"
fi

# kubectl >= 1.27 (kustomize v5) for kustomize.sh. Not from apt: Debian's
# kubernetes-client is too old for current kustomize. These machines carry
# kubectl 1.32 from the Google Cloud SDK's apt repository (package `kubectl`);
# elsewhere install it from https://pkgs.k8s.io (see the Kubernetes docs).
kubectl_minor=$(kubectl version --client -o json 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["minor"].rstrip("+"))' 2>/dev/null || echo 0)
if [ "$kubectl_minor" -lt 27 ]; then
  if [ "${CI:-}" = true ]; then
    echo "deps: ERROR: kubectl >= 1.27 is needed (found: ${kubectl_minor/#0/none}); install it from pkgs.k8s.io" >&2
    exit 1
  fi
  echo "deps: WARNING: kubectl >= 1.27 missing; kustomize.sh will fail" >&2
fi
