#!/usr/bin/env bash
# Type-checks the whole workspace (all targets, clippy -D warnings) for macOS,
# from Linux: catches a Linux-only call that lost its cfg. It cannot link or
# run anything: there is no macOS SDK here. C code (SQLite, bundled by
# rusqlite) is compiled for the host by a stand-in compiler instead, since
# checking Rust never links those objects.
# Usage: tests/check-macos.sh [TARGET...]   (default: both Apple targets)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(aarch64-apple-darwin x86_64-apple-darwin)

stand_in=$(mktemp -d "${TMPDIR:-/tmp}/berth-macos-cc.XXXXXX")
trap 'rm -rf "$stand_in"' EXIT
cat >"$stand_in/cc" <<'SH'
#!/usr/bin/env bash
# cc for Apple targets during `cargo check`: drop Apple-only flags, build for the host.
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -arch) shift ;;
    -mmacosx-version-min=*) ;;
    *) args+=("$1") ;;
  esac
  shift
done
exec cc "${args[@]}"
SH
chmod +x "$stand_in/cc"

for target in "${targets[@]}"; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  var=CC_${target//-/_}
  echo "=== cargo clippy --target $target"
  env "$var=$stand_in/cc" cargo clippy --target "$target" --workspace --all-targets --quiet -- -D warnings
done
echo "macOS type-check passed for: ${targets[*]}"
