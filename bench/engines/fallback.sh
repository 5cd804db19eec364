# shellcheck shell=bash
# Bench-local engine starters with the interface tests/clients/lib.sh gains on
# the replicas branch (start_postgres, pg_database, start_garage,
# engines_missing); used only while lib.sh lacks them. Sourced after lib.sh.

PG_BIN=${BERTH_PG_BIN:-/usr/lib/postgresql/15/bin}
GARAGE_BIN=${BERTH_GARAGE:-$HOME/.cache/berth-tests/garage/bin/garage}

engines_missing() {
  [ -x "$PG_BIN/postgres" ] || echo "PostgreSQL in $PG_BIN"
  [ -x "$GARAGE_BIN" ] || echo "Garage at $GARAGE_BIN"
}

# owner_prefix DIR: sets AS_OWNER, the command prefix that runs a program as
# user postgres owning DIR when we are root (initdb and postgres refuse root).
# An array, not a function: `"${AS_OWNER[@]}" postgres &` must leave $! the
# PID of postgres itself, not of a subshell.
owner_prefix() {
  AS_OWNER=()
  [ "$(id -u)" -eq 0 ] || return 0
  chown -R postgres: "$1"; chmod o+x "$T"
  AS_OWNER=(setpriv --reuid="$(id -u postgres)" --regid="$(id -g postgres)" --clear-groups)
}

start_postgres() {
  local dir=$1
  mkdir -p "$dir"
  owner_prefix "$dir"
  "${AS_OWNER[@]}" "$PG_BIN/initdb" -D "$dir/data" -U berth --auth=trust --no-sync --no-locale \
    >"$dir/initdb.log" 2>&1 || { tail "$dir/initdb.log" >&2; return 1; }
  PG_PORT=$(free_port)
  "${AS_OWNER[@]}" "$PG_BIN/postgres" -D "$dir/data" -k "$dir" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 >"$dir/postgres.log" 2>&1 &
  PG_PID=$!; track postgres "$PG_PID"
  wait_for 30 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { tail "$dir/postgres.log" >&2; return 1; }
}

pg_database() {
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U berth "$1" >&2 || return 1
  echo "postgres://berth@127.0.0.1:$PG_PORT/$1"
}

garage_() { local dir=$1; shift; timeout 60 "$GARAGE_BIN" -c "$dir/garage.toml" "$@"; }

start_garage() {
  local dir=$1 s3 rpc admin key
  s3=$(free_port) rpc=$(free_port) admin=$(free_port)
  mkdir -p "$dir"
  cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(openssl rand -hex 32)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
[admin]
api_bind_addr = "127.0.0.1:$admin"
TOML
  "$GARAGE_BIN" -c "$dir/garage.toml" server --single-node >"$dir/garage.log" 2>&1 &
  echo $! >"$dir/pid"; track garage "$(cat "$dir/pid")"
  wait_for 30 garage_ "$dir" node id -q || { tail "$dir/garage.log" >&2; return 1; }
  key=$(garage_ "$dir" key create bench) && garage_ "$dir" bucket create berth >/dev/null &&
    garage_ "$dir" bucket allow --read --write --owner berth --key bench >/dev/null || return 1
  export REGISTRY_STORAGE=s3 REGISTRY_STORAGE_S3_BUCKET=berth REGISTRY_STORAGE_S3_REGION=garage \
    REGISTRY_STORAGE_S3_FORCEPATHSTYLE=true REGISTRY_STORAGE_S3_REGIONENDPOINT=http://127.0.0.1:$s3
  REGISTRY_STORAGE_S3_ACCESSKEY=$(awk -F': *' '/^Key ID/ {print $2}' <<<"$key")
  REGISTRY_STORAGE_S3_SECRETKEY=$(awk -F': *' '/^Secret key/ {print $2}' <<<"$key")
  export REGISTRY_STORAGE_S3_ACCESSKEY REGISTRY_STORAGE_S3_SECRETKEY
}
