"""Checks berth's /metrics scrapes around a push and a pull (metrics.sh).

usage: metrics_check.py REG LAYOUT BEFORE PUSHED PULLED
Each scrape is parsed with prometheus-client's OpenMetrics parser (what
berth serves) and its classic text parser (what older scrapers use).
"""
import json
import sys
import urllib.request
from collections import defaultdict

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

reg, layout, *paths = sys.argv[1:]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def samples(path):
    text = open(path).read()
    om = [s for f in parse_om(text) for s in f.samples]
    classic = [s for f in parse_text(text) for s in f.samples]
    check(len(om) > 0, f"{path}: OpenMetrics parser read {len(om)} samples")
    om_requests = sorted((s.labels.get("route"), s.labels.get("status"), s.value)
                         for s in om if s.name == "berth_http_requests_total")
    classic_requests = sorted((s.labels.get("route"), s.labels.get("status"), s.value)
                              for s in classic if s.name == "berth_http_requests_total")
    check(om_requests == classic_requests, f"{path}: both parsers read the same request counters")
    return om


def value(ss, name, **labels):
    found = [s.value for s in ss if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(found)


before, pushed, pulled = (samples(p) for p in paths)

REQ = "berth_http_requests_total"
START, UPLOAD = "/v2/{name}/blobs/uploads/", "/v2/{name}/blobs/uploads/{id}"
MANIFEST, BLOB = "/v2/{name}/manifests/{reference}", "/v2/{name}/blobs/{digest}"

# What the push had to send: the layout's manifest names its blobs.
index = json.load(open(f"{layout}/index.json"))
manifest_digest = index["manifests"][0]["digest"]
manifest = json.load(open(f"{layout}/blobs/sha256/{manifest_digest.split(':')[1]}"))
image_blobs = [manifest["config"], *manifest["layers"]]
image_bytes = sum(d["size"] for d in image_blobs)

check(value(pushed, REQ, route=START, method="POST") > value(before, REQ, route=START, method="POST"),
      "push: POST upload-start requests counted")
check(value(pushed, REQ, route=UPLOAD) > value(before, REQ, route=UPLOAD),
      "push: upload-session requests (PATCH/PUT) counted")
check(value(pushed, REQ, route=MANIFEST, method="PUT", status="201") == 1,
      "push: one manifest PUT answered 201")
got = value(pushed, "berth_pushed_bytes_total") - value(before, "berth_pushed_bytes_total")
check(got >= image_bytes, f"push: berth_pushed_bytes_total grew by {got} >= the image's blobs {image_bytes}")
check(value(pulled, REQ, route=MANIFEST, method="GET", status="200") > value(pushed, REQ, route=MANIFEST, method="GET", status="200"),
      "pull: manifest GETs counted")
check(value(pulled, REQ, route=BLOB, method="GET", status="200") >= len(image_blobs) + value(pushed, REQ, route=BLOB, method="GET", status="200"),
      "pull: one blob GET per blob at least")
got = value(pulled, "berth_pulled_bytes_total") - value(pushed, "berth_pulled_bytes_total")
check(got >= image_bytes, f"pull: berth_pulled_bytes_total grew by {got} >= the image's blobs {image_bytes}")
check(not any("metrics/busybox" in v for s in pulled for v in s.labels.values()),
      "no raw path (repository name) in any label")


# The gauges against what the API lists.
def get(path, accept=None):
    req = urllib.request.Request(f"http://{reg}/v2/{path}")
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r), r.headers


ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
repos = get("_catalog")[0]["repositories"]
manifests, blobs = set(), {}
for repo in repos:
    for tag in get(f"{repo}/tags/list")[0]["tags"] or []:
        body, headers = get(f"{repo}/manifests/{tag}", ACCEPT)
        manifests.add((repo, headers["Docker-Content-Digest"]))
        for d in [body.get("config"), *body.get("layers", [])]:
            if d:
                blobs[d["digest"]] = d["size"]
check(value(pulled, "berth_repositories") == len(repos), f"berth_repositories = {len(repos)} (catalog)")
check(value(pulled, "berth_manifests") == len(manifests), f"berth_manifests = {len(manifests)} (tags resolved)")
check(value(pulled, "berth_blobs") == len(blobs), f"berth_blobs = {len(blobs)} (manifests' blobs)")
check(value(pulled, "berth_blobs_stored_bytes") == sum(blobs.values()),
      f"berth_blobs_stored_bytes = {sum(blobs.values())}")
check(value(pulled, "berth_uploads_in_progress") == 0, "no upload left in progress")

# The garbage collector's families, before any pass: present, and read as
# the right types by both parsers (units and suffixes as OpenMetrics wants).
for name, kind in [("berth_gc_runs", "counter"), ("berth_gc_reclaimed_bytes", "counter"),
                   ("berth_gc_removed", "counter"), ("berth_gc_candidates", "gauge"),
                   ("berth_gc_reclaimable_bytes", "gauge"),
                   ("berth_gc_last_run_duration_seconds", "gauge"),
                   ("berth_gc_last_run_timestamp_seconds", "gauge")]:
    text = open(paths[-1]).read()
    om = {f.name: f.type for f in parse_om(text)}
    check(om.get(name) == kind, f"{name} is a {kind} (OpenMetrics parser: {om.get(name)})")
check(value(pulled, "berth_gc_removed_total", kind="blob") == 0, "no blob removed by GC yet")

# Histogram buckets: cumulative, ending at +Inf with the count.
series = defaultdict(list)
counts = {}
for s in pulled:
    key = (s.labels.get("method"), s.labels.get("route"))
    if s.name == "berth_http_request_duration_seconds_bucket":
        series[key].append((float(s.labels["le"]), s.value))
    elif s.name == "berth_http_request_duration_seconds_count":
        counts[key] = s.value
check(len(series) >= 4, f"duration histograms for {len(series)} (method, route) pairs")
for key, buckets in series.items():
    buckets.sort()
    values = [v for _, v in buckets]
    check(values == sorted(values) and buckets[-1][0] == float("inf") and values[-1] == counts.get(key),
          f"buckets of {key} are monotone and end at +Inf = count {counts.get(key)}")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
