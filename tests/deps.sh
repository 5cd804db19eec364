#!/usr/bin/env bash
# Install the real clients the acceptance tests drive (Debian 12, apt), and the
# engines the S3 + PostgreSQL tests start (PostgreSQL 15 from apt, Garage built
# once into ~/.cache/berth-tests/garage). Idempotent: apt-get runs only when
# something is missing. With CI=true a client or engine that is still missing
# afterwards is an error; elsewhere it is a warning.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
  # replicas.sh and the PostgreSQL tests start throwaway clusters from Debian's server binaries
  [ -x "$PG_BIN/postgres" ] || echo postgresql-15
}
PG_BIN=${BERTH_PG_BIN:-/usr/lib/postgresql/15/bin}

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

# Garage (S3-compatible store) for replicas.sh and the S3 tests: not in Debian;
# tests/engines/garage.sh builds it from crates.io once (~12 min on 2 cores)
# into a cache folder outside the repository and reuses it after that. The
# test command runs this build before its clock starts (tests/run.sh).
if [ -f tests/engines/garage.sh ]; then
  bash tests/engines/garage.sh ensure || echo "deps: building Garage failed" >&2
  garage=$(bash tests/engines/garage.sh path)
else
  garage=${BERTH_GARAGE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/garage/bin/garage}
fi
if [ ! -x "$garage" ]; then
  if [ "${CI:-}" = true ]; then
    echo "deps: ERROR: Garage missing at $garage (bash tests/engines/garage.sh ensure builds it)" >&2
    exit 1
  fi
  echo "deps: WARNING: Garage missing at $garage; replicas.sh and the S3 tests will skip" >&2
else
  echo "deps: Garage $("$garage" --version 2>/dev/null | awk '{print $2; exit}') at $garage"
fi
