#!/usr/bin/env bash
# TLS: `berth cert` + `berth serve --tls-cert/--tls-key`; curl, skopeo, podman and ctr
# connect when they trust the CA and are refused when they do not; blobs pulled over
# TLS verify by digest; plain HTTP gets a clean 400; a new certificate is picked up
# without a restart while an open keep-alive connection carries on.
# (docker treats every loopback registry as insecure and skips verification, so it
# proves neither half here.)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CERTS=$T/tls OTHER=$T/other-ca
"$BERTH_BIN" cert --out "$CERTS" --name berth-registry >"$T/cert.out"
"$BERTH_BIN" cert --out "$OTHER" >/dev/null
# Client certificate folders (skopeo, podman): a ca.crt each.
mkdir -p "$T/trust" "$T/distrust"
cp "$CERTS/ca.crt" "$T/trust/ca.crt"
cp "$OTHER/ca.crt" "$T/distrust/ca.crt"

https_ready() { [ "$(curl -s -o /dev/null --cacert "$CERTS/ca.crt" -w '%{http_code}' "https://$HOSTREG/v2/")" = 200 ]; }

# start_berth_tls: like lib.sh's start_berth, over HTTPS with the pair from `berth cert`.
start_berth_tls() {
  # The blobs handler's debug line names the path each blob body took.
  BERTH_LOG=info,berth_server::handlers::blobs=debug \
    serve_berth "$T/berth.log" https_ready --data-dir "$T/berth-data" \
      --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key"
}
start_berth_tls

cert_told_where_the_ca_goes() {
  grep -q "/etc/docker/certs.d/" "$T/cert.out" && grep -q "/etc/containers/certs.d/" "$T/cert.out" &&
    grep -q 'ca = ' "$T/cert.out" && grep -q -- "--tls-cert $CERTS/server.crt --tls-key $CERTS/server.key" "$T/cert.out"
}
check "berth cert prints where the CA goes and the serve line" cert_told_where_the_ca_goes
key_modes() { expect_eq "600 600" "$(stat -c %a "$CERTS/ca.key") $(stat -c %a "$CERTS/server.key")"; }
check "berth cert: ca.key and server.key are 0600" key_modes
check "berth logs that it listens with https" grep -q 'scheme="https"' "$T/berth.log"

# ---- curl ---------------------------------------------------------------------

# refused_for_certificate CMD...: CMD fails, saying why in terms of certificates.
refused_for_certificate() {
  local out
  if out=$("$@" 2>&1); then echo "succeeded without trusting the CA: $out"; return 1; fi
  grep -qiE 'certificate|x509|unknown authority|verif' <<<"$out" || { echo "failed for another reason: $out"; return 1; }
}
check "curl --cacert ca.crt: GET /v2/ is 200" expect_eq 200 "$(http_status --cacert "$CERTS/ca.crt" "https://$HOSTREG/v2/")"
check "curl --cacert ca.crt: 127.0.0.1 and ::1 are in the certificate too" \
  expect_eq "200 200" "$(http_status --cacert "$CERTS/ca.crt" "https://$REG/v2/") $(http_status --cacert "$CERTS/ca.crt" --resolve "berth-registry:$PORT:127.0.0.1" "https://berth-registry:$PORT/v2/")"
check "curl without the CA is refused (certificate)" refused_for_certificate curl -sS --max-time 30 "https://$HOSTREG/v2/"
check "curl trusting another berth cert CA is refused" refused_for_certificate curl -sS --max-time 30 --cacert "$OTHER/ca.crt" "https://$HOSTREG/v2/"

plain_http_answered() {
  curl -sS --max-time 30 -D "$T/plain.headers" -o "$T/plain.body" "http://$REG/v2/" &&
    expect_eq 400 "$(awk 'NR == 1 {print $2}' "$T/plain.headers")" &&
    grep -qi '^connection: close' "$T/plain.headers" && grep -q 'https://' "$T/plain.body"
}
check "plain HTTP to the TLS port: 400, connection: close, says https://" plain_http_answered

# ---- skopeo -------------------------------------------------------------------

make_busybox_layout "$T/layout" latest
ONE=docker://$HOSTREG/tls/one
check "skopeo copy oci: → berth with --dest-cert-dir (trusting the CA)" \
  skopeo_ copy --preserve-digests --dest-cert-dir "$T/trust" "oci:$T/layout:latest" "$ONE:latest"
check "skopeo copy without the CA is refused (certificate)" \
  refused_for_certificate skopeo_ copy --dest-tls-verify=true "oci:$T/layout:latest" "$ONE:untrusted"
check "skopeo copy trusting another CA is refused" \
  refused_for_certificate skopeo_ copy --dest-cert-dir "$T/distrust" "oci:$T/layout:latest" "$ONE:untrusted"
check "skopeo copy berth → oci: with --src-cert-dir" \
  skopeo_ copy --src-cert-dir "$T/trust" "$ONE:latest" "oci:$T/pulled:latest"
# pulled_by_digest: every blob skopeo wrote hashes to its name, and the layer is the one pushed.
pulled_by_digest() {
  local f n=0 layer
  for f in "$T/pulled/blobs/sha256/"*; do
    expect_eq "$(basename "$f")" "$(sha256sum "$f" | cut -d' ' -f1)" || return 1
    n=$((n + 1))
  done
  layer=$(layer_digests <"$T/layout/blobs/sha256/${IMG_DIGEST#sha256:}") &&
    [ -f "$T/pulled/blobs/sha256/${layer#sha256:}" ] && [ "$n" -ge 3 ]
}
check "blobs pulled over TLS verify by digest (sha256sum of the oci: layout)" pulled_by_digest
streamed_not_sent_from_file() {
  local streamed sendfile
  streamed=$(grep 'blob body' "$T/berth.log" | grep -c 'via="\?stream') || true
  sendfile=$(grep 'blob body' "$T/berth.log" | grep -c 'via="\?sendfile') || true
  [ "$streamed" -ge 2 ] && expect_eq 0 "$sendfile"
}
check "blob bodies over TLS took the streaming path, never sendfile (server log)" streamed_not_sent_from_file
check "skopeo inspect over TLS: digest = pushed digest" \
  expect_eq "$IMG_DIGEST" "$(skopeo_ inspect --cert-dir "$T/trust" --format '{{.Digest}}' "$ONE:latest")"

# ---- podman -------------------------------------------------------------------

podman_() {
  timeout 300 podman --root "$T/podman-root" --runroot "$T/podman-run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file "$@"
}
make_rootfs_tar "$T/rootfs.tar" podman
PIMG=$HOSTREG/tls/podman:latest
check "podman import busybox rootfs" podman_ import "$T/rootfs.tar" "$PIMG"
check "podman push --cert-dir (trusting the CA)" podman_ push --cert-dir "$T/trust" --digestfile "$T/podman.digest" "$PIMG"
check "podman push without the CA is refused (certificate)" refused_for_certificate podman_ push --tls-verify=true "$PIMG"
check "podman push trusting another CA is refused" refused_for_certificate podman_ push --cert-dir "$T/distrust" "$PIMG"
podman_pulled() {
  podman_ rmi "$PIMG" >/dev/null && podman_ pull --cert-dir "$T/trust" "$PIMG" >/dev/null &&
    expect_eq "$(cat "$T/podman.digest")" "$(podman_ image inspect --format '{{.Digest}}' "$PIMG")"
}
check "podman rmi, then pull --cert-dir: the pushed digest" podman_pulled

# ---- containerd (ctr) ---------------------------------------------------------

start_containerd
ctr_() { timeout 300 ctr --address "$CTD_SOCK" "$@"; }
# hosts_dir DIR [CA]: a certs.d folder whose hosts.toml sends berth's name to
# https, trusting CA (without CA: the system's roots only).
hosts_dir() {
  mkdir -p "$1/$HOSTREG"
  printf 'server = "https://%s"\n\n[host."https://%s"]\n  capabilities = ["pull", "resolve", "push"]\n' \
    "$HOSTREG" "$HOSTREG" >"$1/$HOSTREG/hosts.toml"
  [ -z "${2:-}" ] || printf '  ca = "%s"\n' "$2" >>"$1/$HOSTREG/hosts.toml"
}
hosts_dir "$T/certs.d" "$CERTS/ca.crt"
hosts_dir "$T/certs.d-other" "$OTHER/ca.crt"
hosts_dir "$T/certs.d-system"
CIMG=$HOSTREG/tls/one:latest
check "ctr images pull --hosts-dir (hosts.toml ca = ca.crt)" ctr_ -n tls images pull --hosts-dir "$T/certs.d" "$CIMG"
ctr_pulled() {
  local layer
  expect_eq "$IMG_DIGEST" "$(ctr_ -n tls images ls | awk -v ref="$CIMG" '$1 == ref {print $3}')" &&
    layer=$(layer_digests <"$T/layout/blobs/sha256/${IMG_DIGEST#sha256:}") &&
    expect_eq "$layer" "sha256:$(ctr_ -n tls content get "$layer" | sha256sum | cut -d' ' -f1)"
}
check "ctr: image digest and layer bytes match over TLS" ctr_pulled
check "ctr pull with hosts.toml ca = another CA is refused (certificate)" \
  refused_for_certificate ctr_ -n other images pull --hosts-dir "$T/certs.d-other" "$CIMG"
check "ctr pull with a hosts.toml without ca (system roots) is refused (certificate)" \
  refused_for_certificate ctr_ -n system images pull --hosts-dir "$T/certs.d-system" "$CIMG"
# Without a hosts.toml, ctr speaks plain HTTP to localhost: it must get the clean 400.
plain_ctr_told() {
  local out
  if out=$(ctr_ -n plain images pull --plain-http "$CIMG" 2>&1); then echo "plain HTTP pull succeeded: $out"; return 1; fi
  grep -q '400 Bad Request' <<<"$out" || { echo "$out"; return 1; }
}
check "ctr pull --plain-http to the TLS port fails with the 400" plain_ctr_told

# ---- a new certificate, no restart ----------------------------------------------

# swap_keeps_connections: a keep-alive connection opened before `berth cert --name
# other.test` rewrites the pair still answers after new handshakes see the new name.
swap_keeps_connections() {
  python3 - "$CERTS" "$PORT" "$BERTH_BIN" <<'EOF'
import http.client, socket, ssl, subprocess, sys, time
certs, port, berth = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=f"{certs}/ca.crt")

def names_served():
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return {v for k, v in tls.getpeercert().get("subjectAltName", ()) if k == "DNS"}

def get(conn):
    conn.request("GET", "/v2/")
    r = conn.getresponse(); r.read()
    return r.status

before = names_served()
assert "other.test" not in before, before
conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
assert get(conn) == 200
subprocess.run([berth, "cert", "--out", certs, "--name", "other.test"], check=True, stdout=subprocess.DEVNULL)
deadline = time.time() + 20
while "other.test" not in names_served():
    assert time.time() < deadline, "the new certificate was not served within 20 s"
    time.sleep(0.3)
# The connection made before the swap is the same socket, still answering.
sock = conn.sock
assert get(conn) == 200 and conn.sock is sock, "the open connection was dropped"
print("new names:", sorted(names_served() - before))
EOF
}
check "new certificate served without restart; open keep-alive connection kept" swap_keeps_connections
check "berth logged the reload" grep -q 'TLS certificate reloaded' "$T/berth.log"
check "curl --cacert (same CA) trusts the new certificate for other.test" \
  expect_eq 200 "$(http_status --cacert "$CERTS/ca.crt" --resolve "other.test:$PORT:127.0.0.1" "https://other.test:$PORT/v2/")"

# SIGHUP reloads even when the files look unchanged (the poll would not), and
# must not end the process (SIGHUP's default action).
reloads() { grep -c 'TLS certificate reloaded' "$T/berth.log"; }
more_reloads_than() { [ "$(reloads)" -gt "$1" ]; }
hangup_reloads() {
  local before
  before=$(reloads) && kill -HUP "$BERTH_PID" && wait_for 10 more_reloads_than "$before" &&
    kill -0 "$BERTH_PID" && https_ready
}
check "SIGHUP: berth reloads the pair and keeps serving" hangup_reloads
