#!/usr/bin/env bash
# Run every real-client script, each against its own fresh berth, and add up the results.
# Last line: "N passed, M failed".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

SCRIPTS=(readme docker podman skopeo containerd tls auth image distribution kind cri kustomize metrics gc pull_through replicas)
SCRIPT_TIMEOUT=${SCRIPT_TIMEOUT:-600}
passed=0 failed=0 summary=()
log=$(mktemp "${TMPDIR:-/tmp}/berth-clients-log.XXXXXX")
trap 'rm -f "$log"' EXIT

for name in "${SCRIPTS[@]}"; do
  echo "=== $name.sh"
  start=$SECONDS rc=0
  timeout "$SCRIPT_TIMEOUT" bash "$here/$name.sh" 2>&1 | tee "$log" || rc=$?
  last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
  p=0 f=0
  if [ -n "$last" ]; then read -r p _ f _ <<<"${last//,/}"; fi
  # A script that died without reporting, or exited non-zero while reporting no
  # failure (timeout, crash), counts as one failure.
  if [ -z "$last" ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then
    f=$((f + 1)); echo "FAIL - $name.sh exited $rc without reporting a failure"
  fi
  passed=$((passed + p)) failed=$((failed + f))
  summary+=("$(printf '%-16s %3d passed, %3d failed  (%ds)' "$name.sh" "$p" "$f" $((SECONDS - start)))")
done

echo "=== client summary"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
