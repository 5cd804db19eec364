#!/usr/bin/env bash
# Throwaway PostgreSQL + single-node Garage for `bench/run.sh --s3`, started
# with tests/clients/lib.sh's starters (on loopback, in a temp folder, by
# PID), kept up while the bench runs, stopped by PID when this script gets
# TERM or when the bench process (PARENT_PID) is gone.
#
#   bench/engines.sh OUT_JSON PARENT_PID DATABASE...
#
# OUT_JSON (written once both engines answer): the S3 endpoint, bucket,
# region and key of a bucket "berth", a PostgreSQL URL per DATABASE, and the
# engines' PIDs (the bench counts their CPU with the S3 targets').
out=$1 parent=$2; shift 2
bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../tests/clients/lib.sh disable=SC1091
source "$bench_dir/../tests/clients/lib.sh"

missing=$(engines_missing)
[ -z "$missing" ] || { echo "engines missing: $missing" >&2; exit 1; }
start_postgres "$T/pg" >&2
start_garage "$T/garage" >&2
dbs=""
for db in "$@"; do
  url=$(pg_database "$db")
  dbs+="${dbs:+, }\"$db\": \"$url\""
done
cat >"$out.tmp" <<JSON
{"endpoint": "$REGISTRY_STORAGE_S3_REGIONENDPOINT", "bucket": "$REGISTRY_STORAGE_S3_BUCKET",
 "region": "$REGISTRY_STORAGE_S3_REGION", "access_key": "$REGISTRY_STORAGE_S3_ACCESSKEY",
 "secret_key": "$REGISTRY_STORAGE_S3_SECRETKEY", "databases": {$dbs},
 "pids": {"postgres": $PG_PID, "garage": $(cat "$T/garage/pid")}}
JSON
mv "$out.tmp" "$out"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
