#!/usr/bin/env bash
# Real clients against berth with auth on, in both modes: Basic (--htpasswd) and
# tokens (--htpasswd --token-auth). Per mode: docker login/push/pull/run/logout,
# podman login push/pull, skopeo --src-creds/--dest-creds, ctr --user, refusals
# (bob on team-a, a push by the pull-only reader, a wrong password), and no
# password or token in berth's log. The htpasswd file is written by Apache's
# `htpasswd -B` and by `berth user add`, so files made elsewhere are proven too.
# shellcheck disable=SC2317  # the *_flow functions and their helpers are called by name
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for tool in htpasswd docker podman skopeo ctr; do
  command -v "$tool" >/dev/null || { echo "FAIL - $tool not found (bash tests/deps.sh installs it)"; exit 1; }
done

# ---- identities and rules ------------------------------------------------------

new_password() { head -c 18 /dev/urandom | base64 | tr -d '/+=' | head -c 20; }
declare -A PW=([admin]=$(new_password) [alice]=$(new_password) [reader]=$(new_password) [bob]=$(new_password))
WRONG_PW=$(new_password)
HTPASSWD=$T/htpasswd

# alice and bob as Apache's tool writes them ($2y$ bcrypt), then admin and reader
# added to the same file by berth: both kinds of line must log in.
write_htpasswd() {
  printf '%s' "${PW[alice]}" | htpasswd -c -B -i "$HTPASSWD" alice &&
    printf '%s' "${PW[bob]}" | htpasswd -B -i "$HTPASSWD" bob &&
    printf '%s\n' "${PW[admin]}" | "$BERTH_BIN" user add admin --htpasswd "$HTPASSWD" --password-stdin &&
    printf '%s\n' "${PW[reader]}" | "$BERTH_BIN" user add reader --htpasswd "$HTPASSWD" --password-stdin &&
    expect_eq "admin alice bob reader" "$(cut -d: -f1 "$HTPASSWD" | sort | xargs)" &&
    grep -q '^alice:[$]2y[$]' "$HTPASSWD"
}
check "htpasswd: alice, bob by htpasswd -B; admin, reader by berth user add --password-stdin" write_htpasswd

cat >"$T/auth.toml" <<'EOF'
[groups]
team-a = ["alice"]
team-b = ["bob"]

[[access]]
who = ["admin"]
repositories = ["*"]
actions = ["*"]

[[access]]
who = ["group:team-a"]
repositories = ["team-a/*"]
actions = ["pull", "push"]

[[access]]
who = ["reader"]
repositories = ["team-a/*"]
actions = ["pull"]

[[access]]
who = ["group:team-b"]
repositories = ["team-b/*"]
actions = ["pull", "push"]
EOF

# ---- berth with auth -------------------------------------------------------------

v2_status() { http_status "http://$REG/v2/"; }
v2_challenges() { [ "$(v2_status)" = 401 ]; }

# start_auth_berth MODE [FLAGS...]: berth with the htpasswd file and the rules,
# data in $T/berth-MODE, log in $T/berth-MODE.log; ready once /v2/ answers 401.
# Request lines are logged (debug) so the leak check covers them too.
start_auth_berth() {
  local mode=$1; shift
  BERTH_DATA=$T/berth-$mode BERTH_LOG=$T/berth-$mode.log
  RUST_LOG=info,berth_server=debug serve_berth "$BERTH_LOG" v2_challenges --data-dir "$BERTH_DATA" \
    --config "$T/auth.toml" --htpasswd "$HTPASSWD" "$@"
}

# As admin, over the API (Basic credentials are accepted in token mode too).
as_admin() { curl -sS --max-time 30 -u "admin:${PW[admin]}" "$@"; }
tags_of() { as_admin "http://$REG/v2/$1/tags/list" | jq -c '.tags // [] | sort'; }
admin_digest() {
  as_admin -I -H "Accept: $ACCEPT_MANIFESTS" "http://$REG/v2/$1/manifests/$2" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}'
}

# refused_exit NAME EXIT PATTERN CMD...: CMD must fail with exit code EXIT and say
# something matching PATTERN (an auth refusal, not e.g. a connection error).
# What the client said is echoed, so the log shows how each client reports it.
refused_exit() {
  local name=$1 want=$2 pattern=$3 rc=0 out; shift 3
  out=$("$@" 2>&1) || rc=$?
  echo "#   client said (exit $rc): $(printf '%s\n' "$out" | grep -iE "$pattern" | tail -n 1 | cut -c1-300)"
  check "$name: refused, exit $want" exit_and_refusal_were "$want" "$rc" "$pattern" "$out"
}
exit_and_refusal_were() {
  # a here-string, not a pipe: grep -q stopping early must not fail the check (pipefail)
  expect_eq "$1" "$2" && { grep -qiE "$3" <<<"$4" || { echo "output does not match /$3/:"; echo "$4"; return 1; }; }
}
DENIED='denied|unauthori[sz]ed|forbidden|401|403'
NO_CREDENTIALS="$DENIED|no basic auth credentials"  # docker's words for a Basic challenge it has nothing for

# ---- clients ---------------------------------------------------------------------

podman_() {
  timeout 300 podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}
ctr_() { timeout 300 ctr --address "$CTD_SOCK" "$@"; }
docker_login() { printf '%s\n' "$2" | timeout 120 docker login -u "$1" --password-stdin "$HOSTREG"; }

docker_flow() {
  local mode=$1 app=$HOSTREG/team-a/app:$1
  refused_exit "[$mode] docker login alice with a wrong password" 1 "$DENIED" docker_login alice "$WRONG_PW"
  check "[$mode] docker login alice --password-stdin (htpasswd -B line)" docker_login alice "${PW[alice]}"
  docker_stored_login() { jq -e --arg h "$HOSTREG" '.auths[$h] | .auth or .identitytoken' "$DOCKER_CONFIG/config.json"; }
  check "[$mode] docker keeps the login in its config.json" docker_stored_login
  echo "# [$mode] docker stored: $(jq -c --arg h "$HOSTREG" '.auths[$h] | keys' "$DOCKER_CONFIG/config.json")"
  if [ "$mode" = token ]; then
    # docker's login asks /token with offline_token=true: with a refresh
    # token in hand it keeps that, never the password.
    docker_kept_no_password() {
      jq -e --arg h "$HOSTREG" '.auths[$h].identitytoken | length > 0' "$DOCKER_CONFIG/config.json" >/dev/null &&
        ! jq -r --arg h "$HOSTREG" '.auths[$h].auth // ""' "$DOCKER_CONFIG/config.json" | base64 -d | grep -qF -- "${PW[alice]}"
    }
    check "[$mode] docker keeps berth's refresh token, not the password" docker_kept_no_password
  fi

  check "[$mode] docker import busybox rootfs as $app" timeout 120 docker import "$T/rootfs.tar" "$app"
  check "[$mode] docker push $app" timeout 300 docker push "$app"
  recorded() { docker image inspect --format '{{join .RepoDigests " "}}' "$app" | grep -qF "@$(admin_digest team-a/app "$mode")"; }
  check "[$mode] pushed digest = berth's Docker-Content-Digest" recorded
  check "[$mode] docker rmi $app" docker rmi "$app"
  check "[$mode] docker pull $app" timeout 300 docker pull "$app"
  runs() { expect_eq ok "$(timeout 120 docker run --rm --network none "$app" /bin/busybox echo ok)"; }
  check "[$mode] docker run --rm --network none $app prints ok" runs

  check "[$mode] docker login reader (berth user add line)" docker_login reader "${PW[reader]}"
  check "[$mode] docker tag $app as team-a/app:by-reader" docker tag "$app" "$HOSTREG/team-a/app:by-reader"
  refused_exit "[$mode] docker push by pull-only reader" 1 "$DENIED" timeout 300 docker push "$HOSTREG/team-a/app:by-reader"
  check "[$mode] reader's refused push wrote no tag" expect_eq "[\"$mode\"]" "$(tags_of team-a/app)"

  check "[$mode] docker login bob" docker_login bob "${PW[bob]}"
  docker rmi "$app" "$HOSTREG/team-a/app:by-reader" >/dev/null || true  # so the pull below must fetch
  refused_exit "[$mode] docker pull team-a by bob (team-b only)" 1 "$DENIED" timeout 300 docker pull "$app"

  check "[$mode] docker logout" timeout 60 docker logout "$HOSTREG"
  refused_exit "[$mode] docker pull after logout (anonymous)" 1 "$NO_CREDENTIALS" timeout 300 docker pull "$app"
}

podman_flow() {
  local mode=$1 img=$HOSTREG/team-a/pod:$1
  podman_login() { printf '%s\n' "$2" | podman_ login --tls-verify=false -u "$1" --password-stdin "$HOSTREG"; }
  # podman's words for a 401 on /v2/ with Basic: "invalid username/password"
  refused_exit "[$mode] podman login alice with a wrong password" 125 "$DENIED|invalid username/password" \
    podman_login alice "$WRONG_PW"
  check "[$mode] podman login alice" podman_login alice "${PW[alice]}"
  check "[$mode] podman import busybox rootfs" podman_ import "$T/rootfs.tar" "$img"
  check "[$mode] podman push $img" podman_ push --tls-verify=false --digestfile "$T/pod-$mode.digest" "$img"
  served() { expect_eq "$(cat "$T/pod-$mode.digest")" "$(admin_digest team-a/pod "$mode")"; }
  check "[$mode] podman's pushed digest = berth's" served
  check "[$mode] podman rmi" podman_ rmi "$img"
  check "[$mode] podman login reader" podman_login reader "${PW[reader]}"
  check "[$mode] podman pull $img as reader" podman_ pull --tls-verify=false "$img"
  pulled() { expect_eq "$(cat "$T/pod-$mode.digest")" "$(podman_ image inspect --format '{{.Digest}}' "$img")"; }
  check "[$mode] podman's pulled digest = pushed" pulled
  refused_exit "[$mode] podman push by pull-only reader" 125 "$DENIED" \
    podman_ push --tls-verify=false "$img" "docker://$HOSTREG/team-a/pod:by-reader"
  check "[$mode] reader's refused push wrote no tag" expect_eq "[\"$mode\"]" "$(tags_of team-a/pod)"
  check "[$mode] podman logout" podman_ logout "$HOSTREG"
  podman_ rmi "$img" >/dev/null || true  # so the pull below must fetch
  refused_exit "[$mode] podman pull team-a by bob (--creds)" 125 "$DENIED" \
    podman_ pull --tls-verify=false --creds "bob:${PW[bob]}" "$img"
}

skopeo_flow() {
  local mode=$1 one=docker://$HOSTREG/team-a/sk:$1
  check "[$mode] skopeo copy oci layout → team-a/sk --dest-creds alice" \
    skopeo_ copy --preserve-digests --dest-tls-verify=false --dest-creds "alice:${PW[alice]}" \
    "oci:$T/layout:latest" "$one"
  check "[$mode] skopeo's digest = berth's" expect_eq "$IMG_DIGEST" "$(admin_digest team-a/sk "$mode")"
  check "[$mode] skopeo copy berth → berth --src-creds reader --dest-creds alice (team-a/sk → team-a/sk2)" \
    skopeo_ copy --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
    --src-creds "reader:${PW[reader]}" --dest-creds "alice:${PW[alice]}" "$one" "docker://$HOSTREG/team-a/sk2:$mode"
  pulled_out() {
    rm -rf "$T/sk-out-$mode" &&
      skopeo_ copy --src-tls-verify=false --src-creds "reader:${PW[reader]}" \
        "docker://$HOSTREG/team-a/sk2:$mode" "oci:$T/sk-out-$mode:x" &&
      expect_eq "$IMG_DIGEST" "$(jq -r '.manifests[0].digest' "$T/sk-out-$mode/index.json")"
  }
  check "[$mode] skopeo copy team-a/sk2 → oci layout --src-creds reader (same digest)" pulled_out
  refused_exit "[$mode] skopeo copy from team-a by bob (--src-creds)" 1 "$DENIED" \
    skopeo_ copy --src-tls-verify=false --src-creds "bob:${PW[bob]}" "$one" "oci:$T/sk-bob-$mode:x"
  refused_exit "[$mode] skopeo copy to team-a by reader (--dest-creds)" 1 "$DENIED" \
    skopeo_ copy --dest-tls-verify=false --dest-creds "reader:${PW[reader]}" \
    "oci:$T/layout:latest" "docker://$HOSTREG/team-a/sk3:$mode"
  check "[$mode] reader's refused skopeo push wrote no tag" expect_eq "[]" "$(tags_of team-a/sk3)"
}

ctr_flow() {
  local mode=$1 img=$HOSTREG/team-a/sk:$1
  check "[$mode] ctr images pull --plain-http --user alice" \
    ctr_ -n "alice-$mode" images pull --plain-http --user "alice:${PW[alice]}" "$img"
  listed() { expect_eq "$IMG_DIGEST" "$(ctr_ -n "alice-$mode" images ls | awk -v r="$img" '$1 == r {print $3}')"; }
  check "[$mode] ctr lists the pulled image with berth's digest" listed
  refused_exit "[$mode] ctr images pull team-a by bob (--user)" 1 "$DENIED" \
    ctr_ -n "bob-$mode" images pull --plain-http --user "bob:${PW[bob]}" "$img"
  if [ "$mode" = token ]; then
    # containerd sends a username and password as the OAuth2 form (grant_type=password)
    ctr_posted() { token_methods "$FLOW_FROM" | grep -qE '(^| )POST 200( |$)'; }
    check "[$mode] ctr got its tokens from POST /token (200)" ctr_posted
  fi
}

# nothing_leaked: neither a password, a Basic credential nor a JWT (header
# `{"` base64url-encoded is `eyJ`) appears in berth's log.
nothing_leaked() {
  local user secrets=()
  for user in "${!PW[@]}"; do
    secrets+=(-e "${PW[$user]}" -e "$(printf '%s:%s' "$user" "${PW[$user]}" | base64 -w0)")
  done
  secrets+=(-e "$WRONG_PW" -e eyJ)
  if grep -nF "${secrets[@]}" "$BERTH_LOG"; then echo "found in $BERTH_LOG (lines above)"; return 1; fi
  [ -s "$BERTH_LOG" ] || { echo "$BERTH_LOG is empty: nothing was checked"; return 1; }
}

# token_methods FROM_LINE: how /token was asked since that line of berth's log,
# e.g. "3 GET 200" (GET with Basic, or the OAuth2 POST form).
token_methods() {
  tail -n +"$1" "$BERTH_LOG" | grep -E 'path="?/token"? ' |
    sed -E 's/.*method=([A-Z]+).*status=([0-9]+).*/\1 \2/' | sort | uniq -c | tr -s ' \n' ' '
}
log_lines() { wc -l <"$BERTH_LOG"; }

# client_flow MODE NAME: run NAME_flow, then (token mode) say how NAME asked /token.
client_flow() {
  local mode=$1 client=$2
  FLOW_FROM=$(($(log_lines) + 1))
  "${client}_flow" "$mode"
  [ "$mode" = basic ] || echo "# [$mode] $client asked /token: $(token_methods "$FLOW_FROM")"
}

run_mode() {
  local mode=$1; shift
  start_auth_berth "$mode" "$@" || { FAILED=$((FAILED + 1)); echo "FAIL - [$mode] berth did not start"; return 0; }
  for client in docker podman skopeo ctr; do client_flow "$mode" "$client"; done
  check "[$mode] no password, Basic credential or token in berth's log" nothing_leaked
  stop_pid "berth-$mode" "$BERTH_PID"
  check "[$mode] berth fsck: the data folder the clients filled is clean" "$BERTH_BIN" fsck --data-dir "$BERTH_DATA"
}

start_dockerd
start_containerd
make_rootfs_tar "$T/rootfs.tar"
make_busybox_layout "$T/layout" latest

run_mode basic
run_mode token --token-auth
