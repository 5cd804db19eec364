#!/usr/bin/env bash
# build-image.sh [TAG]: builds berth's container image from a static binary
# built here, with no network: the Dockerfile's `host` stage copies the
# binary, and BuildKit skips the from-source stage, so no base image is pulled.
#
# TAG defaults to berth:latest; the image is also tagged berth:<version>
# (same repository as TAG). BERTH_PROFILE picks the cargo profile (default
# release; the test suite uses ci and builds the same binary once for both).
# DOCKER_HOST, when set, names the engine that builds and keeps the image.
set -euo pipefail

TAG=${1:-berth:latest}
PROFILE=${BERTH_PROFILE:-release}
TARGET=x86_64-unknown-linux-gnu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Debian's docker CLI (20.10) builds with BuildKit without the buildx
# plugin; a newer CLI first on PATH would need buildx, which is not here.
DOCKER=${BERTH_DOCKER_CLI:-/usr/bin/docker}

die() { echo "build-image.sh: $*" >&2; exit 1; }

[ -x "$DOCKER" ] || die "$DOCKER not found: install Debian's docker.io package (its CLI builds with BuildKit without buildx), or set BERTH_DOCKER_CLI to a docker CLI that can"
# `docker --version` needs no daemon: "Docker version 20.10.24+dfsg1, build ...".
cli_version=$("$DOCKER" --version | sed -E 's/^Docker version ([0-9]+[0-9.]*).*/\1/')
cli_major=${cli_version%%.*}
if [ "${cli_major:-0}" -ge 23 ] 2>/dev/null && ! "$DOCKER" buildx version >/dev/null 2>&1; then
  die "$DOCKER is docker $cli_version, which builds only through the buildx plugin (not installed); its legacy builder would try to pull every stage. Use Debian's docker.io CLI (20.10) via BERTH_DOCKER_CLI, or install buildx"
fi

cd "$ROOT"
echo "# building berth ($PROFILE, static, $TARGET)" >&2
RUSTFLAGS=-Ctarget-feature=+crt-static cargo build --profile "$PROFILE" --target "$TARGET" -p berth-cli
# cargo puts the `dev` profile in a folder named debug.
dir=$PROFILE; [ "$PROFILE" = dev ] && dir=debug
BINARY=target/$TARGET/$dir/berth
[ -x "$BINARY" ] || die "cargo did not produce $BINARY"

# A static binary has no program interpreter and needs no shared library:
# scratch has neither.
if readelf -lW "$BINARY" | grep -q 'INTERP' || readelf -dW "$BINARY" | grep -q '(NEEDED)'; then
  die "$BINARY is not statically linked:$(readelf -dW "$BINARY" | grep '(NEEDED)' || true)"
fi

# The image carries the binary without its debug line tables (46 MB -> 9.5 MB
# on x86-64); symbols stay, so a backtrace still names functions.
IMAGE_BINARY=$BINARY-image
if [ ! -f "$IMAGE_BINARY" ] || [ "$BINARY" -nt "$IMAGE_BINARY" ]; then
  objcopy --strip-debug "$BINARY" "$IMAGE_BINARY.tmp"
  mv "$IMAGE_BINARY.tmp" "$IMAGE_BINARY"
fi

VERSION=$("$BINARY" --version | awk '{print $2}')
[ -n "$VERSION" ] || die "cannot read the version of $BINARY"
REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
# The repository of TAG: a colon in its last path part starts the tag
# ("localhost:5000/berth" has none).
REPO=$TAG
[[ ${TAG##*/} == *:* ]] && REPO=${TAG%:*}

echo "# building image $TAG and $REPO:$VERSION from $IMAGE_BINARY" >&2
DOCKER_BUILDKIT=1 "$DOCKER" build \
  --network none \
  --build-arg BINARY_FROM=host \
  --build-arg "BERTH_BINARY=$IMAGE_BINARY" \
  --build-arg "VERSION=$VERSION" \
  --build-arg "REVISION=$REVISION" \
  --tag "$TAG" \
  --tag "$REPO:$VERSION" \
  --file "$ROOT/Dockerfile" \
  "$ROOT"
echo "$TAG"
