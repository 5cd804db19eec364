#!/usr/bin/env bash
# The Garage binary the S3 tests start (TempGarage, lib.sh's start_garage).
#   garage.sh ensure   build it once into the cache folder if it is missing
#                      (10-14 minutes on 2 cores, outside the test budget)
#   garage.sh path     print where it is (or would be)
# $BERTH_GARAGE names another binary and wins over the cache folder.
set -euo pipefail

GARAGE_VERSION=2.5.0
cache="${XDG_CACHE_HOME:-$HOME/.cache}/berth-tests/garage"
binary="${BERTH_GARAGE:-$cache/bin/garage}"

case "${1:-}" in
  path)
    echo "$binary"
    ;;
  ensure)
    if [ -x "$binary" ]; then
      echo "garage: $("$binary" --version 2>/dev/null | head -1) at $binary"
      exit 0
    fi
    if [ -n "${BERTH_GARAGE:-}" ]; then
      echo "garage: BERTH_GARAGE=$BERTH_GARAGE is not an executable" >&2
      exit 1
    fi
    echo "garage: building garage $GARAGE_VERSION into $cache (once; about 10-14 minutes)"
    mkdir -p "$cache"
    cargo install garage --version "$GARAGE_VERSION" --locked \
      --no-default-features --features bundled-libs,lmdb,sqlite --root "$cache"
    "$binary" --version
    ;;
  *)
    echo "usage: $0 ensure|path" >&2
    exit 2
    ;;
esac
