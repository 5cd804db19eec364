#!/usr/bin/env python3
"""Orchestrates the berth benchmark: starts each registry on loopback, runs
the loadgen scenarios against it, samples the server's /proc entries, and
prints a Markdown table (distribution vs berth) plus a JSON file.

Normally started by bench/run.sh, which installs and builds what this needs.
Python 3 standard library only.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TARGETS = ("distribution", "berth")
# --auth: the same registries with logins, beside the same two without.
AUTH_TARGETS = ("distribution-htpasswd", "distribution", "berth-basic", "berth-token", "berth")
AUTH_SCENARIOS = ("push_1m_16", "manifest_get")
AUTH_BASELINE = "distribution-htpasswd"
# --gc: berth with its collector off, and with it running every second
# beside a stream of garbage (both get the stream); push and pull rows.
GC_TARGETS = ("berth-gc-off", "berth-gc")
GC_SCENARIOS = ("push_64m_monolithic_4", "push_1m_16", "pull_64m_4", "pull_1m_16")
GC_ENV = {"berth-gc-off": {"BERTH_GC_INTERVAL": "off"},
          # Grace: longer than the slowest push here takes from its first blob
          # to the manifest naming them all (at 0 s the collector may take a
          # blob in between: the grace is what protects a push in flight).
          "berth-gc": {"BERTH_GC_INTERVAL": "1s", "BERTH_GC_GRACE": "10s"}}
CHURN = {"size": "256KiB", "rate": 20}  # unreferenced blobs per second, pushed to both
# --pull-through: distribution holds the images (the upstream, also pulled
# directly); one berth caches it and keeps what it cached ("cached"), another
# starts from an empty data dir before every repetition ("cold"), so each of
# its pulls streams through the tee from the upstream.
PT_TARGETS = ("distribution", "berth-cached", "berth-cold")
PT_UPSTREAM = "bench.up"  # the [[upstream]] name: the prefix clients pull under
PT_REPO = "bench/pull"  # where the images live upstream; through berth: bench.up/bench/pull
PT_MANIFEST_REPO = "bench/manifest"  # a small image (5 layers), its manifest GET by tag
# (key, digests set, streams): the pull rows' shapes, over the images pushed upstream.
PT_SHAPES = (("pull_64m_1", "big", 1), ("pull_64m_4", "big", 4), ("pull_1m_16", "small", 16))
# --s3: the two registries on the filesystem (as in the main table), the same
# two on one single-node Garage bucket (berth with its metadata in
# PostgreSQL), and two berth replicas on that bucket and another database,
# the loadgen's connections alternating between them.
S3_TARGETS = ("distribution", "berth", "distribution-s3", "berth-s3", "berth-s3-2x")
S3_SCENARIOS = ("push_64m_monolithic_4", "push_64m_chunked_4", "push_1m_16", "pull_64m_4", "pull_1m_16",
                "manifest_get", "manifest_put")
# Key prefix (and PostgreSQL database) of each S3 target in the shared bucket.
S3_ROOTS = {"distribution-s3": "distribution", "berth-s3": "berth-one", "berth-s3-2x": "berth-two"}
S3_DATABASES = {"berth-s3": "berth_one", "berth-s3-2x": "berth_two"}
REPLICAS = 2
BENCH_USER = "bench"
MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- /proc ----

def proc_rss_kib(pid):
    """Resident set size in KiB, from /proc/PID/statm (cheap to read)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KIB
    except (OSError, IndexError, ValueError):
        return 0


def proc_status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu_secs(pid):
    """utime + stime of the process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def system_busy_secs():
    """CPU seconds all cores spent not idle (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK  # minus idle and iowait (guest is inside user)


def wait_quiet(max_secs, threshold=0.15):
    """Wait (bounded) until other work uses < threshold of one core over 2 s."""
    deadline = time.monotonic() + max_secs
    while True:
        b0 = system_busy_secs()
        time.sleep(2)
        busy = (system_busy_secs() - b0) / 2
        if busy < threshold:
            return busy
        if time.monotonic() >= deadline:
            log(f"machine still busy ({busy:.2f} cores in use); going on anyway")
            return busy
        log(f"waiting for a quiet machine ({busy:.2f} cores in use)")


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def tree_cpu_secs(roots):
    """CPU seconds of processes `roots` and all their descendants, including
    children they have reaped (PostgreSQL forks a backend per connection)."""
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parent[pid] = int(fields[1])
        cpu[pid] = sum(int(x) for x in fields[11:15]) / CLK_TCK  # utime stime cutime cstime
    wanted, total = set(roots), 0.0
    for pid in cpu:
        p, seen = pid, 0
        while p and p not in wanted and seen < 64:
            p, seen = parent.get(p, 0), seen + 1
        if p in wanted:
            total += cpu[pid]
    return total


class Monitor:
    """Server CPU delta and peak RSS (VmRSS sampled every 50 ms) over a block;
    for a server of several processes (replicas), their sums."""

    def __init__(self, pids, interval=0.05):
        self.pids, self.interval = pids, interval
        self.stop = threading.Event()

    def rss_kib(self):
        return sum(proc_rss_kib(p) for p in self.pids)

    def cpu_secs(self):
        return sum(proc_cpu_secs(p) for p in self.pids)

    def __enter__(self):
        self.peak_kib = self.rss_kib()
        self.cpu0 = self.cpu_secs()
        self.busy0 = system_busy_secs()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def _loop(self):
        while not self.stop.wait(self.interval):
            self.peak_kib = max(self.peak_kib, self.rss_kib())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak_kib = max(self.peak_kib, self.rss_kib())
        self.cpu_s = self.cpu_secs() - self.cpu0
        self.busy_s = system_busy_secs() - self.busy0


# -------------------------------------------------------------- servers ----

def env_with(**extra):
    env = dict(os.environ)
    env.update({k: v for k, v in extra.items() if v})
    return env


class Server:
    """A registry process started (and stopped) by this script, by its PID.
    Names: "berth", "distribution", and with logins "berth-basic" (htpasswd),
    "berth-token" (htpasswd + token service), "distribution-htpasswd"."""

    def __init__(self, name, workdir, berth_bin=None, data_dir=None, password=None, upstream_url=None, s3=None):
        self.name, self.workdir, self.berth_bin = name, workdir, berth_bin
        self.upstream_url = upstream_url  # berth as a pull-through cache of this registry
        # Blobs in this S3 bucket (and for berth, metadata in this database):
        # an engines.json entry plus "root" (key prefix) and "db_url".
        self.s3 = s3
        self.data = data_dir or os.path.join(workdir, f"{name}-data")
        os.makedirs(self.data, exist_ok=True)
        self.proc = None
        self.logfile = os.path.join(workdir, f"{name}.log")
        self.password = password if name in ("berth-basic", "berth-token", "distribution-htpasswd") else None
        self.htpasswd = os.path.join(workdir, "htpasswd")

    def loadgen_auth(self):
        """The loadgen's login flags for this server."""
        if not self.password:
            return []
        return ["--basic", f"{BENCH_USER}:{self.password}"] + (["--token"] if self.name == "berth-token" else [])

    def command(self, port):
        if self.name.startswith("berth"):
            cmd = [self.berth_bin, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", self.data]
            if self.password:
                cmd += ["--htpasswd", self.htpasswd]
            if self.name == "berth-token":
                cmd += ["--token-auth"]
            if self.upstream_url:
                cfg = os.path.join(self.workdir, f"{self.name}.toml")
                with open(cfg, "w") as f:
                    f.write(f'[[upstream]]\nname = "{PT_UPSTREAM}"\nurl = "{self.upstream_url}"\n')
                cmd += ["--config", cfg]
            return cmd, env_with(BERTH_LOG=os.environ.get("BERTH_BENCH_LOG"), **GC_ENV.get(self.name, {}),
                                 **berth_s3_env(self.s3))
        cfg = os.path.join(self.workdir, f"{self.name}.yml")
        with open(cfg, "w") as f:
            f.write(
                "version: 0.1\n"
                "log: {accesslog: {disabled: true}, level: error}\n"
                f"storage: {{{distribution_storage(self.data, self.s3)}, delete: {{enabled: true}}}}\n"
                f"http: {{addr: 127.0.0.1:{port}}}\n")
            if self.password:  # bcrypt on every request: distribution keeps no verified credential
                f.write(f"auth: {{htpasswd: {{realm: bench, path: {self.htpasswd}}}}}\n")
        env = dict(os.environ)
        if self.s3:
            # The AWS SDK in 2.8 panics at start when AWS_CA_BUNDLE is set (it
            # cannot add a CA to distribution's own transport); Garage here is
            # plain HTTP on loopback, so no CA is needed.
            env.pop("AWS_CA_BUNDLE", None)
        return ["docker-registry", "serve", cfg], env

    def start(self, timeout=120):
        """Start and wait for the first 200 on GET /v2/; returns seconds to ready."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd, env = self.command(self.port)
        out = open(self.logfile, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
        out.close()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v2/")
                status = c.getresponse().status
                c.close()
                # With auth, the challenge says it is up: no password check before the runs.
                if status == 200 or (self.password and status == 401):
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.log_tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    @property
    def pids(self):
        return [self.proc.pid]

    def stop(self):
        if not self.alive():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def log_tail(self, n=15):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:]).strip()
        except OSError:
            return ""


def berth_s3_env(s3):
    """berth's environment for blobs in `s3` and metadata in its database
    (registry:2's variable names where it has them); none without `s3`."""
    if not s3:
        return {}
    return {"REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_REGIONENDPOINT": s3["endpoint"],
            "REGISTRY_STORAGE_S3_BUCKET": s3["bucket"], "REGISTRY_STORAGE_S3_REGION": s3["region"],
            "REGISTRY_STORAGE_S3_ACCESSKEY": s3["access_key"], "REGISTRY_STORAGE_S3_SECRETKEY": s3["secret_key"],
            "REGISTRY_STORAGE_S3_FORCEPATHSTYLE": "true", "REGISTRY_STORAGE_S3_ROOTDIRECTORY": s3["root"],
            "BERTH_METADATA_URL": s3["db_url"]}


def distribution_storage(data_dir, s3):
    """distribution's `storage:` driver entry (YAML flow style). 2.8's s3
    driver has no forcepathstyle key: it addresses buckets by path whenever
    regionendpoint is set, which Garage needs. Its blob GETs answer 307 to a
    presigned bucket URL unless redirects are disabled; berth's are off by
    default, so both serve the bytes themselves here."""
    if not s3:
        return f"filesystem: {{rootdirectory: {data_dir}}}"
    return (f"s3: {{region: {s3['region']}, regionendpoint: '{s3['endpoint']}', bucket: {s3['bucket']}, "
            f"accesskey: {s3['access_key']}, secretkey: {s3['secret_key']}, rootdirectory: /{s3['root']}, "
            f"secure: false, v4auth: true}}, redirect: {{disable: true}}")


class ServerGroup:
    """Replicas of one registry (berth on the same bucket and database), used
    as one target: the loadgen gets every URL, comma-separated, and sends each
    new connection to the next (round-robin); CPU and RSS are their sums."""

    def __init__(self, name, servers):
        self.name, self.servers = name, servers
        self.data = os.path.join(servers[0].workdir, f"{name}-data")
        self.password = None

    def start(self, timeout=120):
        """One after the other (the first one migrates the schema); seconds until the last is ready."""
        t0 = time.monotonic()
        for srv in self.servers:
            srv.start(timeout)
        self.url = ",".join(srv.url for srv in self.servers)
        self.port = self.servers[0].port
        return time.monotonic() - t0

    def loadgen_auth(self):
        return []

    def alive(self):
        return all(srv.alive() for srv in self.servers)

    @property
    def proc(self):  # for exit codes in messages: the first replica that exited
        return next((srv.proc for srv in self.servers if not srv.alive()), self.servers[0].proc)

    @property
    def pid(self):
        return self.servers[0].pid

    @property
    def pids(self):
        return [srv.pid for srv in self.servers]

    def stop(self):
        for srv in self.servers:
            srv.stop()

    def log_tail(self, n=15):
        return " | ".join(f"{srv.name}: {srv.log_tail(n)}" for srv in self.servers)


# -------------------------------------------------------------- loadgen ----

class Loadgen:
    def __init__(self, path):
        self.path = path

    def __call__(self, *args, timeout=600):
        """Run one loadgen command; returns (result dict, client cpu seconds)."""
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            p = subprocess.run([self.path, *map(str, args)], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"loadgen {args[0]} timed out after {timeout}s"}, 0.0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        try:
            res = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            res = {"error": f"loadgen exit {p.returncode}: {p.stdout[-500:]} {p.stderr[-500:]}"}
        if p.returncode != 0 and "error" not in res:
            res["error"] = f"loadgen exit {p.returncode}: {p.stderr[-500:]}"
        return res, client_cpu


# ------------------------------------------------------------ scenarios ----

def plan(quick):
    """Scenario parameters. --quick shrinks counts for a smoke run."""
    return {
        "reps": 1 if quick else 3,
        "big_count_1": 2 if quick else 8,      # 64 MiB blobs, 1 stream
        "big_count_4": 4 if quick else 16,     # 64 MiB blobs, 4 streams
        "small_count": 100 if quick else 500,  # 1 MiB blobs, 16 streams
        "pull_passes": 1 if quick else 4,  # ~1 s or more per repetition for berth
        "manifest_secs": 2 if quick else 5,
        "repos": 200 if quick else 2000,
        "repos_big": 1000 if quick else 10000,  # berth only
        "iperf_secs": 1 if quick else 5,
        "pt_big_count": 4 if quick else 16,  # --pull-through: 64 MiB blobs upstream
    }


class Runner:
    """One registry under test: its server, its results, one repetition at a time."""

    def __init__(self, name, args, loadgen, workdir, password=None, upstream=None, srv=None, engines=()):
        self.name, self.lg, self.workdir = name, loadgen, workdir
        # A berth caching `upstream` (a Server already started): its CPU during
        # this runner's runs is the upstream's share, not other work.
        self.upstream = upstream
        # PIDs of the S3 and database engines (--s3): their CPU is counted apart.
        self.engines = list(engines)
        self.srv = srv or Server(name, workdir, berth_bin=args.berth, password=password,
                                 upstream_url=upstream.url if upstream else None)
        self.res = {}
        self.churn = None

    def start_churn(self):
        """`loadgen churn` against this server until stop_churn: garbage for a collector."""
        self.churn_out = os.path.join(self.workdir, f"{self.name}-churn.out")
        with open(self.churn_out, "w") as out:
            self.churn = subprocess.Popen([self.lg.path, "churn", "--url", self.srv.url, "--size", CHURN["size"],
                                           "--rate", str(CHURN["rate"])], stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)

    def stop_churn(self):
        """Stops the churn by its PID; its last totals line (or an error)."""
        if self.churn is None:
            return {}
        if self.churn.poll() is None:
            self.churn.terminate()
            self.churn.wait(timeout=15)
        self.churn = None
        try:
            lines = [l for l in open(self.churn_out) if l.startswith("{")]
            return json.loads(lines[-1]) if lines else {"error": "no output"}
        except (OSError, json.JSONDecodeError) as e:
            return {"error": str(e)}

    def gc_metrics(self):
        """The collector's counters from /metrics (None if it does not say)."""
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=5)
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode(errors="replace")
            c.close()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            for key, name in (("gc_runs", "berth_gc_runs_total "), ("gc_bytes", "berth_gc_reclaimed_bytes_total "),
                              ("gc_blobs", 'berth_gc_removed_total{kind="blob"} ')):
                if line.startswith(name):
                    out[key] = float(line[len(name):])
        return out

    def digests(self, tag):
        return os.path.join(self.workdir, f"{self.name}-{tag}.digests")

    def ok(self, key):
        e = self.res.get(key)
        return e is not None and not e.get("error")

    def start(self, key):
        try:
            ready = self.srv.start()
            time.sleep(1.0)
            self.res[key] = {"median": {"ready_s": ready,
                                        "idle_rss_mib": sum(proc_status_kib(pid, "VmRSS")
                                                            for pid in self.srv.pids) / 1024}}
            log(f"  {self.name}: {key}: ready in {ready:.3f}s, "
                f"idle RSS {self.res[key]['median']['idle_rss_mib']:.1f} MiB")
            return True
        except RuntimeError as e:
            self.res[key] = {"error": str(e)}
            log(f"  {self.name}: {key}: {e}")
            return False

    def measure(self, key, args, gb_field="bytes"):
        """One repetition of a loadgen command under a Monitor. False once it failed."""
        entry = self.res.setdefault(key, {"runs": []})
        if entry.get("error"):
            return False
        if not self.srv.alive():
            entry["error"] = f"server not running (exit {self.srv.proc.returncode}): {self.srv.log_tail()}"
            log(f"  {self.name}: {key}: {entry['error']}")
            try:
                self.srv.start()
                entry["error"] += " [restarted]"
            except RuntimeError as e:
                entry["error"] += f" [restart failed: {e}]"
            return False
        os.sync()  # start each run with no dirty pages from the last one
        up_pid = self.upstream.pid if self.upstream and self.upstream.alive() else None
        up_cpu0 = proc_cpu_secs(up_pid) if up_pid else 0.0
        eng_cpu0 = tree_cpu_secs(self.engines) if self.engines else 0.0
        with Monitor(self.srv.pids) as m:
            out, client_cpu = self.lg(*args, "--url", self.srv.url, *self.srv.loadgen_auth())
        up_cpu = proc_cpu_secs(up_pid) - up_cpu0 if up_pid else 0.0
        # PostgreSQL and Garage: busy for the S3 targets, idle (but counted,
        # so not taken for other work) during the others' runs.
        eng_cpu = tree_cpu_secs(self.engines) - eng_cpu0 if self.engines else 0.0
        if "error" in out:
            entry["error"] = out["error"]
            if not self.srv.alive():
                entry["error"] += f" | server exited {self.srv.proc.returncode}: {self.srv.log_tail()}"
            log(f"  {self.name}: {key}: FAILED: {entry['error']}")
            return False
        out["server_cpu_s"] = round(m.cpu_s, 3)
        out["client_cpu_s"] = round(client_cpu, 3)
        out["peak_rss_mib"] = round(m.peak_kib / 1024, 1)
        # CPU used by anything else on the machine meanwhile (should be ~0).
        out["other_cpu_s"] = round(max(0.0, m.busy_s - m.cpu_s - client_cpu - up_cpu - eng_cpu), 3)
        if out.get(gb_field):
            out["cpu_s_per_gb"] = m.cpu_s / (out[gb_field] / 1e9)
        if self.engines:
            out["engine_cpu_s"] = round(eng_cpu, 3)
            if out.get(gb_field):
                out["engine_cpu_s_per_gb"] = eng_cpu / (out[gb_field] / 1e9)
        if up_pid:
            out["upstream_cpu_s"] = round(up_cpu, 3)
            if out.get(gb_field):
                out["upstream_cpu_s_per_gb"] = up_cpu / (out[gb_field] / 1e9)
        entry["runs"].append(out)
        entry["median"] = medians(entry["runs"])
        log(f"  {self.name}: {key} #{len(entry['runs'])}: " + ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()
            if k in ("mb_s", "blobs_s", "req_s", "p50_ms", "p99_ms", "secs", "server_cpu_s", "client_cpu_s",
                     "other_cpu_s", "peak_rss_mib")))
        return True


def scenarios(p):
    """(key, args(runner) -> loadgen argv or None to skip, repetitions, berth only?, group).
    Scenarios of one group take turns repetition by repetition (see run_targets)."""
    reps, n, nb = p["reps"], p["repos"], p["repos_big"]
    out = []
    # Push: 64 MiB blobs (monolithic/chunked, 1/4 streams), 1 MiB x N at 16 streams.
    for mode in ("monolithic", "chunked"):
        for streams, count in ((1, p["big_count_1"]), (4, p["big_count_4"])):
            out.append((f"push_64m_{mode}_{streams}", lambda r, mode=mode, streams=streams, count=count: [
                "push", "--repo", "bench/push", "--size", p.get("big_size", "64MiB"), "--count", count, "--streams", streams,
                "--mode", mode, "--chunk", "8MiB", "--digests-out", r.digests(f"{mode}{streams}")], reps, False,
                "push"))
    out.append(("push_1m_16", lambda r: ["push", "--repo", "bench/push", "--size", "1MiB", "--count",
                                         p["small_count"], "--streams", "16", "--digests-out", r.digests("small")],
                reps, False, "push"))
    # Pull what the monolithic pushes wrote (their last repetition).
    for verify in (False, True):
        for key, tag, streams, passes in (("pull_64m_1", "monolithic1", 1, p["pull_passes"]),
                                          ("pull_64m_4", "monolithic4", 4, p["pull_passes"]),
                                          ("pull_1m_16", "small", 16, p["pull_passes"])):
            out.append((key + ("_verify" if verify else ""),
                        lambda r, tag=tag, streams=streams, passes=passes, verify=verify:
                        ["pull", "--repo", "bench/push", "--digests", r.digests(tag), "--streams", streams,
                         "--passes", passes] + (["--verify"] if verify else [])
                        if os.path.exists(r.digests(tag)) else None, reps, False, "pull"))
    # Manifests by tag, 32 keep-alive connections (PUT: --s3 only).
    for method in ("GET", "HEAD") + (("PUT",) if p.get("manifest_put") else ()):
        out.append((f"manifest_{method.lower()}", lambda r, method=method: [
            "manifest", "--conns", "32", "--duration", f"{p['manifest_secs']}s", "--method", method], reps, False,
            "manifest"))
    # Many repositories: seed once (timed), then list; berth alone also at repos_big.
    for total, start, big in ((n, 0, False), (nb, n, True)):
        out.append((f"seed_{total}", lambda r, total=total, start=start: [
            "seed-repos", total - start, "--start", start, "--streams", "16"], 1, big, f"seed_{total}"))
        out.append((f"catalog_{total}", lambda r, total=total: [
            "list-catalog", "--n", "100", "--expect", total] if r.ok(f"seed_{total}") else None, reps, big,
            f"list_{total}"))
        out.append((f"tags_{total}", lambda r, total=total: [
            "list-tags", "--count", total, "--streams", "8"] if r.ok(f"seed_{total}") else None, reps, big,
            f"list_{total}"))
        if big:  # berth's own JSON API: distribution has none
            out.append((f"api_{total}", lambda r, total=total: [
                "list-api", "--n", "100", "--expect", total, "--searches", "50"]
                if r.ok(f"seed_{total}") else None, reps, True, f"list_{total}"))
    return out


def medians(runs):
    keys = {k for r in runs for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    agg = lambda k: max if k == "peak_rss_mib" else statistics.median  # peak: max over repetitions
    return {k: agg(k)([r[k] for r in runs if k in r]) for k in sorted(keys)}


def rounds(scenarios):
    """Repetition r of every scenario in a group, then repetition r+1: this
    machine has slow phases lasting tens of seconds, and spreading a scenario's
    repetitions over the group's whole time keeps one phase from setting its median."""
    groups = []
    for sc in scenarios:
        if groups and groups[-1][0][4] == sc[4]:
            groups[-1].append(sc)
        else:
            groups.append([sc])
    for group in groups:
        for rep in range(max(sc[2] for sc in group)):
            for sc in group:
                if rep < sc[2]:
                    yield sc


def write_htpasswd(berth_bin, path):
    """A throwaway user with a fresh random password, bcrypt cost 12, written
    by `berth user add` (what an operator runs; distribution reads the same
    file). Returns the password."""
    password = secrets.token_urlsafe(18)
    subprocess.run([berth_bin, "user", "add", BENCH_USER, "--htpasswd", path, "--password-stdin", "--cost", "12"],
                   input=password + "\n", text=True, check=True, capture_output=True)
    return password


def take_turns(runners, chosen):
    """Each repetition of each scenario to each registry in turn (in rounds)."""
    for key, make_args, _, berth_only, _ in rounds(chosen):
        log(f"=== {key} ===")
        for r in runners:
            if not r.ok("startup_empty") or (berth_only and r.name != "berth"):
                continue
            argv = make_args(r)
            if argv is None:
                r.res.setdefault(key, {"runs": [], "error": "skipped: an earlier scenario it needs failed"})
                continue
            r.measure(key, argv)


def run_targets(names, args, lg, p, workdir):
    if args.gc:
        return run_gc_targets(names, args, lg, p, workdir)
    if args.pull_through:
        return run_pull_through(args, lg, p, workdir)
    if args.s3:
        return run_s3_targets(names, args, lg, p, workdir)
    """All registries run side by side; each repetition of each scenario goes
    to each registry in turn, so drift on the machine affects them alike."""
    password = None
    if any(n in AUTH_TARGETS and n not in TARGETS for n in names):
        password = write_htpasswd(args.berth, os.path.join(workdir, "htpasswd"))
    runners = [Runner(n, args, lg, workdir, password) for n in names]
    chosen = scenarios(p)
    if args.auth:
        chosen = [sc for sc in chosen if sc[0] in AUTH_SCENARIOS]
    try:
        for r in runners:
            log(f"=== start {r.name} ===")
            r.start("startup_empty")
        take_turns(runners, chosen)
        for r in runners:
            if r.srv.alive():
                r.res["overall"] = {"median": {"vmhwm_mib": proc_status_kib(r.srv.pid, "VmHWM") / 1024,
                                               "cpu_s": proc_cpu_secs(r.srv.pid)}}
            if r.name == "berth" and r.ok("startup_empty") and not args.auth:
                # Restart with the big data dir in place: time to the first 200 on /v2/.
                r.srv.stop()
                os.sync()
                r.start(f"startup_{p['repos_big']}")
    finally:
        for r in runners:
            r.srv.stop()
            if r.srv.alive():
                log(f"  WARNING: {r.name} (pid {r.srv.pid}) still running")
            shutil.rmtree(r.srv.data, ignore_errors=True)
    return {r.name: r.res for r in runners}


def run_gc_targets(names, args, lg, p, workdir):
    """--gc: berth with its collector off and on, side by side, both under
    the same churn of unreferenced blobs, the push and pull scenarios taking
    turns as in the full bench. Pushes name their blobs in a manifest at the
    end (timed), so the collector keeps what the pulls read."""
    runners = [Runner(n, args, lg, workdir) for n in names]
    chosen = [sc for sc in scenarios(p) if sc[0] in GC_SCENARIOS]
    try:
        for r in runners:
            log(f"=== start {r.name} (+ churn: {CHURN['rate']}/s x {CHURN['size']}) ===")
            if r.start("startup_empty"):
                r.start_churn()
        # The collector needs unreferenced blobs older than its grace before it has work.
        time.sleep(12)
        for key, make_args, _, _, _ in rounds(chosen):
            log(f"=== {key} ===")
            for r in runners:
                if not r.ok("startup_empty"):
                    continue
                argv = make_args(r)
                if argv is None:
                    r.res.setdefault(key, {"runs": [], "error": "skipped: an earlier scenario it needs failed"})
                    continue
                if argv[0] == "push":
                    argv = argv + ["--manifest-tag", f"{key}-{len(r.res.get(key, {}).get('runs', []))}"]
                r.measure(key, argv)
        for r in runners:
            r.res["gc"] = {"median": r.gc_metrics() if r.srv.alive() else {}}
            r.res["churn"] = {"median": r.stop_churn()}
            log(f"  {r.name}: collector {r.res['gc']['median']}, churn {r.res['churn']['median']}")
    finally:
        for r in runners:
            r.stop_churn()
            r.srv.stop()
            shutil.rmtree(r.srv.data, ignore_errors=True)
    return {r.name: r.res for r in runners}


# --------------------------------------------------------- pull-through ----

PT_COUNTERS = {"hits": "berth_pull_through_hits_total", "misses": "berth_pull_through_misses_total",
               "errors": "berth_pull_through_upstream_errors_total",
               "fetched_bytes": "berth_pull_through_fetched_bytes_total"}


def pt_counters(srv):
    """berth's pull-through counters for PT_UPSTREAM from /metrics (None
    where /metrics does not say)."""
    out = dict.fromkeys(PT_COUNTERS)
    try:
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode(errors="replace")
        c.close()
    except OSError:
        return out
    for line in text.splitlines():
        for key, name in PT_COUNTERS.items():
            if line.startswith(name + "{") and f'upstream="{PT_UPSTREAM}"' in line:
                out[key] = float(line.rsplit(" ", 1)[1])
    return out


def measure_through(r, key, argv, cold):
    """One repetition through berth, checked against berth's counters: a
    cached pull fetches nothing upstream (every blob a hit); a cold one
    fetches every byte it serves (every blob a miss). A run that is not what
    its row says fails the row."""
    before = pt_counters(r.srv)
    if not r.measure(key, argv):
        return
    entry = r.res[key]
    run = entry["runs"][-1]
    after = pt_counters(r.srv)
    # The tee's task may count its last chunk just after the client has it.
    deadline = time.monotonic() + 10
    while cold and after["fetched_bytes"] is not None and time.monotonic() < deadline and \
            after["fetched_bytes"] - (before["fetched_bytes"] or 0) < run["bytes"]:
        time.sleep(0.1)
        after = pt_counters(r.srv)
    if after["fetched_bytes"] is None:
        run["counters"] = "absent from /metrics"
        log(f"  {r.name}: {key}: WARNING: no berth_pull_through_* counters for {PT_UPSTREAM}: run not checked")
        return
    delta = {k: after[k] - (before[k] or 0) for k in PT_COUNTERS if after[k] is not None}
    run.update({"cache_hits": delta.get("hits"), "cache_misses": delta.get("misses"),
                "upstream_errors": delta.get("errors"), "fetched_mb": delta["fetched_bytes"] / 1e6})
    entry["median"] = medians(entry["runs"])
    served = run.get("count", run.get("requests", 0))  # blobs pulled, or manifest GETs answered
    if delta.get("errors"):
        entry["error"] = f"{delta['errors']:.0f} upstream errors counted"
    elif not cold and (delta["fetched_bytes"] or delta.get("misses") or (delta.get("hits") or 0) < served):
        entry["error"] = (f"not a pure cache hit: {delta['fetched_bytes']:.0f} bytes fetched upstream, "
                          f"{delta.get('misses', 0):.0f} misses, {delta.get('hits', 0):.0f} hits for {served}")
    elif cold and (delta["fetched_bytes"] < run.get("bytes", 0) or (delta.get("misses") or 0) < served):
        entry["error"] = (f"not cold: {delta['fetched_bytes']:.0f} bytes fetched upstream for "
                          f"{run.get('bytes')} served, {delta.get('misses', 0):.0f} misses for {served}")
    if entry.get("error"):
        log(f"  {r.name}: {key}: FAILED: {entry['error']}")


def empty_cache(r):
    """Stops berth, replaces its data dir with an empty one, starts it again."""
    r.srv.stop()
    shutil.rmtree(r.srv.data, ignore_errors=True)
    os.makedirs(r.srv.data)
    r.srv.start()


def get_manifest(srv, repo, tag):
    """GET a manifest by tag (as a client pulling an image starts); returns
    (status, Berth-Cache header)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    c.request("GET", f"/v2/{repo}/manifests/{tag}",
              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    resp = c.getresponse()
    resp.read()
    c.close()
    return resp.status, resp.getheader("Berth-Cache")


def run_pull_through(args, lg, p, workdir):
    """--pull-through: images pushed to distribution (the upstream); each
    repetition of each shape pulls them directly from it, through a berth
    that already holds them (cached), and through a berth started on an
    empty data dir just before (cold: every byte streams through the tee)."""
    up = Runner("distribution", args, lg, workdir)
    runners = [up]
    through = f"{PT_UPSTREAM}/{PT_REPO}"
    try:
        log("=== start distribution (the upstream) ===")
        if not up.start("startup_empty"):
            return {up.name: up.res}
        cached = Runner("berth-cached", args, lg, workdir, upstream=up.srv)
        cold = Runner("berth-cold", args, lg, workdir, upstream=up.srv)
        runners += [cached, cold]
        for r in (cached, cold):
            log(f"=== start {r.name} ([[upstream]] {PT_UPSTREAM} = {up.srv.url}) ===")
            if not r.start("startup_empty"):
                return {r.name: r.res for r in runners}
        # The images, pushed upstream once (untimed): a manifest names each set's blobs.
        log(f"=== setup: push {p['pt_big_count']} x 64 MiB and {p['small_count']} x 1 MiB to the upstream ===")
        setup = up.res.setdefault("setup", {"median": {}})
        for name, size, count, streams in (("big", "64MiB", p["pt_big_count"], 4),
                                           ("small", "1MiB", p["small_count"], 16)):
            out, _ = lg("push", "--url", up.srv.url, "--repo", PT_REPO, "--size", size, "--count", count,
                        "--streams", streams, "--digests-out", up.digests(name), "--manifest-tag", name)
            if "error" in out:
                setup["error"] = f"push {name} upstream: {out['error']}"
                log(f"  {setup['error']}")
                return {r.name: r.res for r in runners}
        # The manifest rows' image (loadgen manifest pushes it, then runs 1 s: untimed).
        out, _ = lg("manifest", "--url", up.srv.url, "--repo", PT_MANIFEST_REPO, "--conns", "1", "--duration", "1s")
        if "error" in out:
            setup["error"] = f"push {PT_MANIFEST_REPO} upstream: {out['error']}"
        # Fill the cached berth (untimed): each image's manifest, then its blobs once.
        log(f"=== setup: pull everything once through {cached.name} ===")
        warm = cached.res.setdefault("warm", {"median": {}})
        for name in ("big", "small"):
            status, outcome = get_manifest(cached.srv, through, name)
            warm["median"][f"manifest_{name}"] = f"{status} {outcome}"
            out, _ = lg("pull", "--url", cached.srv.url, "--repo", through, "--digests", up.digests(name),
                        "--streams", "4")
            if "error" in out:
                warm["error"] = f"pull {name} through berth: {out['error']}"
                log(f"  {warm['error']}")
                return {r.name: r.res for r in runners}
        status, outcome = get_manifest(cached.srv, f"{PT_UPSTREAM}/{PT_MANIFEST_REPO}", "latest")
        warm["median"]["manifest_latest"] = f"{status} {outcome}"
        warm["median"].update({k: v for k, v in pt_counters(cached.srv).items() if v is not None})
        log(f"  warm: {warm['median']}")
        passes = p["pull_passes"]
        for rep in range(p["reps"]):
            for key, digests, streams in PT_SHAPES:
                log(f"=== {key} #{rep + 1} ===")

                def pull(repo, n, digests=digests, streams=streams):
                    return ["pull", "--repo", repo, "--digests", up.digests(digests), "--streams", streams,
                            "--passes", n]
                up.measure(f"direct_{key}_x{passes}", pull(PT_REPO, passes))
                measure_through(cached, f"cached_{key}", pull(through, passes), cold=False)
                if passes != 1:
                    up.measure(f"direct_{key}_x1", pull(PT_REPO, 1))
                try:
                    empty_cache(cold)
                except RuntimeError as e:
                    cold.res.setdefault(f"cold_{key}", {"runs": []})["error"] = f"restart: {e}"
                    continue
                measure_through(cold, f"cold_{key}", pull(through, 1), cold=True)
            # A tag checked within [cache] freshness: served with no upstream request.
            log(f"=== manifest_get #{rep + 1} ===")
            manifest = ["manifest", "--no-seed", "--tag", "latest", "--conns", "32",
                        "--duration", f"{p['manifest_secs']}s"]
            up.measure("direct_manifest_get", manifest + ["--repo", PT_MANIFEST_REPO])
            measure_through(cached, "cached_manifest_get", manifest + ["--repo", f"{PT_UPSTREAM}/{PT_MANIFEST_REPO}"],
                            cold=False)
    finally:
        for r in reversed(runners):
            r.srv.stop()
            if r.srv.alive():
                log(f"  WARNING: {r.name} (pid {r.srv.pid}) still running")
            shutil.rmtree(r.srv.data, ignore_errors=True)
    return {r.name: r.res for r in runners}


# ------------------------------------------------------------------ s3 ----

def s3_plan(quick):
    """--s3: every blob pushed stays on disk until the end (five targets,
    three repetitions: about 5.3 GB), so pushes are smaller than the main
    table's. The quick run (a check that every target works, in about 40 s)
    pushes 16 MiB blobs and skips the chunked push."""
    p = plan(quick)
    p.update({"big_count_4": 4, "big_size": "16MiB" if quick else "32MiB",
              "small_count": 32 if quick else 100, "pull_passes": 1 if quick else 2,
              "manifest_secs": 1 if quick else 3, "repos": 30 if quick else 300, "manifest_put": True})
    return p


def s3_disk_need(p, targets, quick):
    """Bytes the pushes leave on disk (registries' data dirs and Garage)."""
    big = int(p["big_size"].removesuffix("MiB")) * MiB * p["big_count_4"]
    per_rep = big * (1 if quick else 2) + p["small_count"] * MiB
    return per_rep * p["reps"] * len(targets)


def s3_scenarios(p, quick):
    n = p["repos"]
    keys = set(S3_SCENARIOS) - ({"push_64m_chunked_4"} if quick else set())
    return [sc for sc in scenarios(p) if sc[0] in keys or sc[0] in (f"seed_{n}", f"catalog_{n}", f"tags_{n}")]


class Engines:
    """PostgreSQL and a single-node Garage for --s3, started by
    bench/engines.sh (tests/clients/lib.sh's starters), which stops them by
    PID when it gets TERM or this process is gone."""

    def __init__(self, workdir):
        self.out = os.path.join(workdir, "engines.json")
        self.logfile = os.path.join(workdir, "engines.log")
        self.proc = None

    def start(self, databases, timeout=180):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engines.sh")
        with open(self.logfile, "ab") as log_out:
            self.proc = subprocess.Popen(["bash", script, self.out, str(os.getpid()), *databases],
                                         stdout=log_out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        while not os.path.exists(self.out):
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"engines did not start: {self.log_tail()}")
            time.sleep(0.1)
        with open(self.out) as f:
            info = json.load(f)
        log(f"  engines up in {time.monotonic() - t0:.1f}s: Garage {info['endpoint']} "
            f"(pid {info['pids']['garage']}), PostgreSQL pid {info['pids']['postgres']}")
        return info

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            log(f"  WARNING: engines.sh (pid {self.proc.pid}) still running after 90 s")

    def log_tail(self, n=20):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:]).strip()
        except OSError:
            return ""


def s3_server(name, args, workdir, engines):
    """The Server (or ServerGroup) of an --s3 target."""
    if name not in S3_ROOTS:
        return None
    s3 = dict(engines, root=S3_ROOTS[name], db_url=engines["databases"].get(S3_DATABASES.get(name)))
    if name == "berth-s3-2x":
        return ServerGroup(name, [Server(f"{name}-{i + 1}", workdir, berth_bin=args.berth, s3=s3,
                                         data_dir=os.path.join(workdir, f"{name}-data", f"r{i + 1}"))
                                  for i in range(REPLICAS)])
    return Server(name, workdir, berth_bin=args.berth, s3=s3)


def run_s3_targets(names, args, lg, p, workdir):
    """--s3: the registries on the filesystem and on Garage (+ PostgreSQL),
    side by side, taking turns as in the full bench."""
    need, free = s3_disk_need(p, names, args.quick), shutil.disk_usage(workdir).free
    if free < need + (3 << 30):  # other engineers' builds share this disk
        msg = f"{free / 1e9:.1f} GB free in {workdir}: the run needs {need / 1e9:.1f} GB and 3 GiB to spare"
        log(f"  {msg}")
        return {"engines": {"startup": {"error": msg}}}
    engines = Engines(workdir)
    runners = []
    try:
        info = engines.start([S3_DATABASES[n] for n in names if n in S3_DATABASES])
        pids = list(info["pids"].values())
        runners = [Runner(n, args, lg, workdir, srv=s3_server(n, args, workdir, info), engines=pids) for n in names]
        for r in runners:
            log(f"=== start {r.name} ===")
            r.start("startup_empty")
        take_turns(runners, s3_scenarios(p, args.quick))
    except RuntimeError as e:
        log(f"  {e}")
        return {"engines": {"startup": {"error": str(e)}}}
    finally:
        for r in runners:
            r.srv.stop()
            if r.srv.alive():
                log(f"  WARNING: {r.name} still running")
            shutil.rmtree(r.srv.data, ignore_errors=True)
        engines.stop()
    return {r.name: r.res for r in runners}


S3_LABEL = {"distribution": "distribution", "berth": "berth", "distribution-s3": "distribution S3",
            "berth-s3": "berth S3+PG", "berth-s3-2x": f"berth S3+PG x{REPLICAS}"}


def s3_rows(p):
    """(label, key, metric, unit, higher is better)."""
    n, big = p["repos"], p["big_size"].replace("MiB", " MiB")
    out = [("ready after start (empty)", "startup_empty", "ready_s", "s", False),
           (f"push {big} monolithic, 4 streams", "push_64m_monolithic_4", "mb_s", "MB/s", True),
           (f"push {big} chunked (8 MiB), 4 streams", "push_64m_chunked_4", "mb_s", "MB/s", True),
           ("push 1 MiB x N, 16 streams", "push_1m_16", "blobs_s", "blobs/s", True),
           (f"pull {big}, 4 streams", "pull_64m_4", "mb_s", "MB/s", True),
           ("pull 1 MiB, 16 streams", "pull_1m_16", "blobs_s", "blobs/s", True)]
    for m in ("get", "put"):
        out += [(f"manifest {m.upper()} by tag, 32 conns", f"manifest_{m}", "req_s", "req/s", True),
                (f"manifest {m.upper()} p50", f"manifest_{m}", "p50_ms", "ms", False),
                (f"manifest {m.upper()} p99", f"manifest_{m}", "p99_ms", "ms", False)]
    out += [(f"seed {n:,} repos (16 streams)", f"seed_{n}", "secs", "s", False),
            (f"list catalog, {n:,} repos, n=100", f"catalog_{n}", "secs", "s", False),
            (f"tags/list x {n:,}, 8 streams", f"tags_{n}", "secs", "s", False)]
    return out


def s3_table(results, p):
    pairs = (("distribution", "berth"), ("distribution-s3", "berth-s3"), ("berth-s3", "berth-s3-2x"))
    head = ["scenario"] + [S3_LABEL[t] for t in S3_TARGETS]
    head += ["berth / distribution", "S3: berth / distribution", f"x{REPLICAS} / x1", "unit"]
    out = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
    for label, key, metric, unit, higher in s3_rows(p):
        vals = [cell(results, t, key, metric) for t in S3_TARGETS]
        if all(v is None for v in vals):
            continue
        ratios = []
        for a, b in pairs:
            x, y = cell(results, a, key, metric), cell(results, b, key, metric)
            ok = isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0 and y > 0
            ratios.append(f"{(y / x if higher else x / y):.2f}x" if ok else "—")
        mark = " †" if noisy(results, key) else ""
        out.append(f"| {label}{mark} | " + " | ".join(fmt(v) for v in vals) + " | " + " | ".join(ratios)
                   + f" | {unit} |")
    return "\n".join(out)


def s3_cpu_table(results, p):
    """Server CPU per GB (push/pull) or per run (manifests, listings); for
    the S3 targets "registry + engines" (Garage and PostgreSQL)."""
    head = ["scenario"] + [S3_LABEL[t] for t in S3_TARGETS] + ["unit"]
    out = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 2) + "---|"]
    seen = set()
    for label, key, _, _, _ in s3_rows(p):
        if key in seen or key.startswith("startup"):
            continue
        seen.add(key)
        per_gb = key.startswith(("push_", "pull_"))
        metric, eng, unit = (("cpu_s_per_gb", "engine_cpu_s_per_gb", "CPU s/GB") if per_gb
                             else ("server_cpu_s", "engine_cpu_s", "CPU s"))
        cells = []
        for t in S3_TARGETS:
            v = cell(results, t, key, metric)
            e = cell(results, t, key, eng) if t in S3_ROOTS else None
            cells.append(f"{fmt(v)} + {fmt(e)}" if isinstance(e, (int, float)) else fmt(v))
        out.append(f"| {label} | " + " | ".join(cells) + f" | {unit} |")
    return "\n".join(out)


def s3_report(doc, p):
    res = doc["results"]
    m = doc["machine"]
    lines = [
        f"## berth benchmark, S3 + PostgreSQL ({doc['started']}, {'quick' if doc['quick'] else 'full'}, "
        f"median of {p['reps']}, {doc['elapsed_s']:.0f} s)",
        "",
        f"Command: `{doc.get('command') or 'bench/run.sh --s3'}`. "
        f"Machine: {m.get('nproc')} cores, {m.get('cpu_model')}, {m.get('mem_total_gib')} GiB, kernel {m.get('kernel')}. "
        f"S3: one single-node Garage (loopback, temp folder), one bucket; each S3 target under its own key prefix "
        f"({', '.join(f'{S3_LABEL[t]}: `{r}/`' for t, r in S3_ROOTS.items())}); berth's metadata in PostgreSQL 15 "
        f"(one database per berth target). x{REPLICAS}: {REPLICAS} `berth serve` processes on the same prefix and "
        f"database, the loadgen's connections alternating between them (round-robin per connection). "
        f"Pushes: {p['big_size'].replace('MiB', ' MiB')} x {p['big_count_4']}, 1 MiB x {p['small_count']}; "
        f"pulls: {p['pull_passes']} pass(es) "
        f"over the last monolithic push; manifests {p['manifest_secs']} s per run.",
        "",
        s3_table(res, p),
        "",
        "Ratios > 1: berth (or two replicas) better. Server CPU (registry process(es); for the S3 targets "
        "+ Garage and PostgreSQL, which only the S3 targets keep busy), median:",
        "",
        s3_cpu_table(res, p),
        "",
        f"† other work on the machine (neither the servers, the engines nor the loadgen) used more than {NOISY} "
        "of a core during these runs.",
    ]
    runs = [x for r in res.values() for e in r.values() for x in e.get("runs", [])]
    other, secs = sum(x.get("other_cpu_s", 0) for x in runs), sum(x.get("secs", 0) for x in runs)
    if secs:
        lines.append(f"\nNoise: {other:.1f} CPU-s of other work during {secs:.0f} s of measured runs "
                     f"({100 * other / secs:.0f}% of one core); load average {doc['loadavg_start']:.2f} at start, "
                     f"{doc.get('loadavg_end', 0):.2f} at end.")
    errs = [(t, k, e["error"]) for t, r in res.items() for k, e in r.items() if e.get("error")]
    if errs:
        lines += ["", "Failures:"] + [f"- {t} / {k}: {e}" for t, k, e in errs]
    return "\n".join(lines)


# -------------------------------------------------------------- machine ----

def machine_info():
    return {
        "nproc": os.cpu_count(),
        "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
        "mem_total_gib": round(proc_meminfo_kib("MemTotal") / (1 << 20), 1),
        "kernel": platform.release(),
    }


def machine_limits(lg, p, workdir):
    log("=== machine ===")
    m = machine_info()
    sha, _ = lg("sha256", "--size", "1GiB")
    m["sha256_mb_s"] = sha.get("mb_s")
    m["sha_ni"] = sha.get("sha_ni")
    disk, _ = lg("disk", "--dir", workdir, "--size", "256MiB", "--block", "1MiB")
    m["disk_fsync_mb_s"] = disk.get("mb_s")
    m["iperf3_gbit_s"] = iperf(p["iperf_secs"])
    # A reference for the 4-stream pulls: TCP alone, sent with sendfile as berth sends blobs.
    m["iperf3_4_zerocopy_gbit_s"] = iperf(p["iperf_secs"], "-P", "4", "--zerocopy")
    log(f"  {m}")
    return m


def fill_free_memory(workdir, keep_free_mib=512, limit_s=120):
    """Fills free memory with clean page cache (reads of a sparse file, kept
    until the end), so that the runs get memory by reclaiming it.

    On these VMs, memory that has stayed free for a while is handed back to
    the host (virtio-balloon free page reporting), and the guest's first use
    of such a page costs a host fault. A push that grows the page cache into
    it pays about three times the kernel CPU per byte until free memory runs
    out and reclaim starts (measured: berth alone, 64 MiB pushes, 40 ticks of
    system time per 512 MiB before, 135 in that band, 40 again once kswapd
    reclaims). Starting from a full page cache puts both registries in the
    steady state of a long-running host instead of in that band."""
    path = os.path.join(workdir, "ballast")
    start = time.monotonic()
    free = proc_meminfo_kib("MemFree") // 1024
    size = max(0, free - keep_free_mib) << 20
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: reading its holes costs no disk
    read = 0
    with open(path, "rb", buffering=0) as f:
        while time.monotonic() - start < limit_s:
            chunk = f.read(4 << 20)
            if not chunk:
                break
            read += len(chunk)
            if read % (256 << 20) == 0 and proc_meminfo_kib("MemFree") // 1024 <= keep_free_mib:
                break
    m = {"ballast_gib": round(read / (1 << 30), 1), "secs": round(time.monotonic() - start, 1),
         "mem_free_mib": proc_meminfo_kib("MemFree") // 1024}
    log(f"  page cache filled: {m}")
    return m


def proc_meminfo_kib(field):
    for line in open("/proc/meminfo"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def iperf(secs, *extra):
    port = free_port()
    srv = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port), "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # wait until it listens (at most ~5 s)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        # That probe counted as the server's one client on some versions: restart if it exited.
        time.sleep(0.2)
        if srv.poll() is not None:
            srv = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port), "-1"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(secs), "-J", *extra],
                             capture_output=True, text=True, timeout=secs + 30)
        j = json.loads(out.stdout)
        return round(j["end"]["sum_received"]["bits_per_second"] / 1e9, 2)
    except (subprocess.TimeoutExpired, json.JSONDecodeError, KeyError) as e:
        log(f"  iperf3 failed: {e}")
        return None
    finally:
        if srv.poll() is None:
            srv.terminate()
            try:
                srv.wait(timeout=5)
            except subprocess.TimeoutExpired:
                srv.kill()


# ---------------------------------------------------------------- table ----

def rows(p):
    """(label, result key, metric, unit, higher is better)."""
    n, nb = p["repos"], p["repos_big"]
    main = [
        ("ready after start (empty)", "startup_empty", "ready_s", "s", False),
        ("idle RSS after start", "startup_empty", "idle_rss_mib", "MiB", False),
    ]
    for mode in ("monolithic", "chunked"):
        for s in (1, 4):
            main.append((f"push 64 MiB {mode}, {s} stream{'s' if s > 1 else ''}",
                         f"push_64m_{mode}_{s}", "mb_s", "MB/s", True))
    main += [
        ("push 1 MiB x N, 16 streams", "push_1m_16", "blobs_s", "blobs/s", True),
        ("push 1 MiB x N, 16 streams", "push_1m_16", "mb_s", "MB/s", True),
    ]
    for sfx, what in (("", ""), ("_verify", ", sha256 checked")):
        main += [
            (f"pull 64 MiB, 1 stream{what}", f"pull_64m_1{sfx}", "mb_s", "MB/s", True),
            (f"pull 64 MiB, 4 streams{what}", f"pull_64m_4{sfx}", "mb_s", "MB/s", True),
            (f"pull 1 MiB, 16 streams{what}", f"pull_1m_16{sfx}", "blobs_s", "blobs/s", True),
        ]
    for m in ("get", "head"):
        M = m.upper()
        main += [
            (f"manifest {M} by tag, 32 conns", f"manifest_{m}", "req_s", "req/s", True),
            (f"manifest {M} p50", f"manifest_{m}", "p50_ms", "ms", False),
            (f"manifest {M} p99", f"manifest_{m}", "p99_ms", "ms", False),
        ]
    for total in (n, nb):
        main += [
            (f"seed {total:,} repos (16 streams)", f"seed_{total}", "secs", "s", False),
            (f"list catalog, {total:,} repos, n=100", f"catalog_{total}", "secs", "s", False),
            (f"tags/list x {total:,}, 8 streams", f"tags_{total}", "secs", "s", False),
        ]
    main += [
        (f"/api/v1/repositories page, {nb:,} repos, n=100, p50", f"api_{nb}", "p50_ms", "ms", False),
        (f"/api/v1/repositories page, {nb:,} repos, n=100, p99", f"api_{nb}", "p99_ms", "ms", False),
        (f"/api/v1/repositories?q= search, {nb:,} repos, p50", f"api_{nb}", "search_p50_ms", "ms", False),
    ]
    main += [
        (f"ready after restart, {nb:,} repos", f"startup_{nb}", "ready_s", "s", False),
        (f"idle RSS after restart, {nb:,} repos", f"startup_{nb}", "idle_rss_mib", "MiB", False),
        ("peak RSS over whole run (VmHWM)", "overall", "vmhwm_mib", "MiB", False),
    ]
    label = {}
    for lab, k, _, _, _ in main:
        label.setdefault(k, lab)
    keys = list(label)
    res = [(f"server CPU per GB: {label[k]}", k, "cpu_s_per_gb", "CPU s/GB", False)
           for k in keys if k.startswith(("push_", "pull_"))]
    res += [(f"server CPU: {label[k]}", k, "server_cpu_s", "CPU s", False)
            for k in keys if k.startswith(("manifest_", "seed_", "catalog_", "tags_", "api_"))]
    res += [(f"peak RSS: {label[k]}", k, "peak_rss_mib", "MiB", False)
            for k in keys if k.startswith(("push_", "pull_", "manifest_", "seed_", "catalog_", "tags_", "api_"))]
    return main, res


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def cell(results, target, key, metric):
    e = results.get(target, {}).get(key)
    if e is None:
        return None
    if e.get("error") and metric not in e.get("median", {}):
        return "FAIL"
    return e.get("median", {}).get(metric)


NOISY = 0.25  # cores used by other work during a scenario's runs that earn it a mark


def noisy(results, key):
    """True if other work used more than NOISY cores during the runs of `key`."""
    for r in results.values():
        runs = r.get(key, {}).get("runs", [])
        if runs and statistics.median(x.get("other_cpu_s", 0) / max(x.get("secs", 1), 1e-3) for x in runs) > NOISY:
            return True
    return False


def table(results, spec, targets):
    out = ["| scenario | distribution | berth | ratio (>1 = berth better) | unit |",
           "|---|---:|---:|---:|---|"]
    for label, key, metric, unit, higher in spec:
        d, b = cell(results, "distribution", key, metric), cell(results, "berth", key, metric)
        if d is None and b is None:
            continue
        if noisy(results, key):
            label += " †"
        ratio = None
        if isinstance(d, (int, float)) and isinstance(b, (int, float)) and d > 0 and b > 0:
            ratio = f"{(b / d if higher else d / b):.2f}x"
        out.append(f"| {label} | {fmt(d)} | {fmt(b)} | {ratio or '—'} | {unit} |")
    return "\n".join(out)


def report(doc, p):
    main, res = rows(p)
    m = doc["machine"]
    lines = [
        f"## berth benchmark ({doc['started']}, {'quick' if doc['quick'] else 'full'}, "
        f"median of {p['reps']}, {doc['elapsed_s']:.0f} s)",
        "",
        f"Machine: {m.get('nproc')} cores, {m.get('cpu_model')}, {m.get('mem_total_gib')} GiB, kernel {m.get('kernel')}. "
        f"Limits: SHA-256 one core {fmt(m.get('sha256_mb_s'))} MB/s (SHA-NI: {m.get('sha_ni')}), "
        f"loopback TCP {fmt(m.get('iperf3_gbit_s'))} Gbit/s (4 streams, zero-copy sender: "
        f"{fmt(m.get('iperf3_4_zerocopy_gbit_s'))} Gbit/s), disk write+fsync {fmt(m.get('disk_fsync_mb_s'))} MB/s.",
        (f"Free memory filled with {doc['memory']['ballast_gib']} GiB of clean page cache before the runs, "
         "so that they reclaim memory as a long-running host does (bench/README.md)."
         if "memory" in doc else "Free memory not filled (smoke run)."),
        "",
        table(doc["results"], main, doc["targets"]),
        "",
        "Server resources per scenario (CPU = utime+stime delta, per GB moved for push/pull, median of repetitions; "
        "peak RSS = max of VmRSS sampled every 50 ms over all repetitions):",
        "",
        table(doc["results"], res, doc["targets"]),
    ]
    lines.append(f"\n† other work on the machine (neither server nor loadgen) used more than {NOISY} "
                 "of a core during these runs: compare with care, or re-run on a quiet machine.")
    for t, r in doc["results"].items():
        runs = [x for e in r.values() for x in e.get("runs", [])]
        other = sum(x.get("other_cpu_s", 0) for x in runs)
        secs = sum(x.get("secs", 0) for x in runs)
        if secs:
            lines.append(f"\nNoise, {t}: CPU used by neither server nor loadgen (other processes, kernel writeback): {other:.1f} CPU-s during {secs:.0f} s of measured runs "
                         f"({100 * other / secs:.0f}% of one core); load average {doc['loadavg_start']:.2f} at start, "
                         f"{doc.get('loadavg_end', 0):.2f} at end.")
    errs = [(t, k, e["error"]) for t, r in doc["results"].items() for k, e in r.items() if e.get("error")]
    if errs:
        lines += ["", "Failures:"] + [f"- {t} / {k}: {e}" for t, k, e in errs]
    return "\n".join(lines)


AUTH_LABEL = {
    "distribution-htpasswd": "distribution, htpasswd (Basic)",
    "distribution": "distribution, no auth",
    "berth-basic": "berth, htpasswd (Basic)",
    "berth-token": "berth, token (Bearer)",
    "berth": "berth, no auth",
}


def noisy_runs(entry):
    runs = (entry or {}).get("runs", [])
    return bool(runs) and statistics.median(
        x.get("other_cpu_s", 0) / max(x.get("secs", 1), 1e-3) for x in runs) > NOISY


def auth_table(results, targets):
    """One row per target: manifest GET and the 1 MiB push, with ratios
    against distribution with htpasswd (> 1 = faster than it)."""
    out = ["| target | manifest GET req/s (32 conns) | p50 / p99 ms | push 1 MiB x N, 16 streams: s | MB/s "
           f"| server CPU s per push | login (ms) | manifest GET vs {AUTH_BASELINE} | push vs {AUTH_BASELINE} |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in targets:
        r = results.get(t, {})
        m, pu = r.get("manifest_get"), r.get("push_1m_16")

        def ratio(key, metric):
            v, b = cell(results, t, key, metric), cell(results, AUTH_BASELINE, key, metric)
            ok = isinstance(v, (int, float)) and isinstance(b, (int, float)) and v > 0 and b > 0
            return f"{fmt(v / b)}x" if ok else "—"
        mark = lambda e: " †" if noisy_runs(e) else ""
        lat = f"{fmt(cell(results, t, 'manifest_get', 'p50_ms'))} / {fmt(cell(results, t, 'manifest_get', 'p99_ms'))}"
        login = cell(results, t, "manifest_get", "auth_setup_ms")
        out.append(f"| {AUTH_LABEL.get(t, t)} | {fmt(cell(results, t, 'manifest_get', 'req_s'))}{mark(m)} | {lat} "
                   f"| {fmt(cell(results, t, 'push_1m_16', 'secs'))}{mark(pu)} | {fmt(cell(results, t, 'push_1m_16', 'mb_s'))} "
                   f"| {fmt(cell(results, t, 'push_1m_16', 'server_cpu_s'))} | {fmt(login) if login else '—'} "
                   f"| {ratio('manifest_get', 'req_s')} | {ratio('push_1m_16', 'mb_s')} |")
    return "\n".join(out)


GC_ROWS = [
    ("push 64 MiB monolithic, 4 streams (+ manifest)", "push_64m_monolithic_4", "mb_s", "MB/s"),
    ("push 1 MiB x N, 16 streams (+ manifest)", "push_1m_16", "mb_s", "MB/s"),
    ("pull 64 MiB, 4 streams", "pull_64m_4", "mb_s", "MB/s"),
    ("pull 1 MiB, 16 streams", "pull_1m_16", "blobs_s", "blobs/s"),
]


def gc_report(doc, p):
    res = doc["results"]
    off, on = GC_TARGETS
    out = ["| scenario | berth, GC off | berth, GC every 1 s | GC / off | server CPU s/GB, off / GC | unit |",
           "|---|---:|---:|---:|---:|---|"]
    for label, key, metric, unit in GC_ROWS:
        a, b = cell(res, off, key, metric), cell(res, on, key, metric)
        ratio = f"{b / a:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 else "—"
        cpu = f"{fmt(cell(res, off, key, 'cpu_s_per_gb'))} / {fmt(cell(res, on, key, 'cpu_s_per_gb'))}"
        out.append(f"| {label}{' †' if noisy(res, key) else ''} | {fmt(a)} | {fmt(b)} | {ratio} | {cpu} | {unit} |")
    gc = res.get(on, {}).get("gc", {}).get("median", {})
    churn = {t: res.get(t, {}).get("churn", {}).get("median", {}) for t in GC_TARGETS}
    m = doc["machine"]
    lines = [
        f"## berth benchmark, GC ({doc['started']}, {'quick' if doc['quick'] else 'full'}, "
        f"median of {p['reps']}, {doc['elapsed_s']:.0f} s)",
        "",
        f"Machine: {m.get('nproc')} cores, {m.get('cpu_model')}, {m.get('mem_total_gib')} GiB, kernel {m.get('kernel')}. "
        f"Both servers get {CHURN['rate']} unreferenced {CHURN['size']} blobs a second (`loadgen churn`) for the whole run; "
        f"GC on: `BERTH_GC_INTERVAL=1s BERTH_GC_GRACE=10s`; off: `BERTH_GC_INTERVAL=off`.",
        "",
        "\n".join(out),
        "",
        f"Collector (GC on) over the whole run: {fmt(gc.get('gc_runs'))} passes, {fmt(gc.get('gc_blobs'))} blobs and "
        f"{fmt((gc.get('gc_bytes') or 0) / 1e6)} MB reclaimed; churn pushed "
        + ", ".join(f"{t}: {fmt(c.get('blobs'))} blobs" for t, c in churn.items()) + ".",
        f"\n† other work on the machine used more than {NOISY} of a core during these runs.",
    ]
    errs = [(t, k, e["error"]) for t, r in res.items() for k, e in r.items() if e.get("error")]
    if errs:
        lines += ["", "Failures:"] + [f"- {t} / {k}: {e}" for t, k, e in errs]
    return "\n".join(lines)


PT_ROWS = (("pull 64 MiB, 1 stream", "pull_64m_1", "mb_s", "MB/s"),
           ("pull 64 MiB, 4 streams", "pull_64m_4", "mb_s", "MB/s"),
           ("pull 1 MiB x N, 16 streams", "pull_1m_16", "blobs_s", "blobs/s"))


def pt_table_rows(passes):
    """(label, direct key, target, berth key, metric, unit, higher is better)."""
    out = []
    for label, shape, metric, unit in PT_ROWS:
        out.append((f"{label}, cached ({passes} pass{'es' if passes > 1 else ''})", f"direct_{shape}_x{passes}",
                    "berth-cached", f"cached_{shape}", metric, unit, True))
        out.append((f"{label}, cold (1 pass, berth's data dir emptied before)", f"direct_{shape}_x1",
                    "berth-cold", f"cold_{shape}", metric, unit, True))
    for metric, what, unit, higher in (("req_s", "", "req/s", True), ("p50_ms", " p50", "ms", False),
                                       ("p99_ms", " p99", "ms", False)):
        out.append((f"manifest GET by tag{what}, 32 conns, cached", "direct_manifest_get", "berth-cached",
                    "cached_manifest_get", metric, unit, higher))
    return out


def pt_report(doc, p):
    res = doc["results"]
    out = ["| scenario | direct from distribution | through berth | ratio (>1 = berth better) "
           "| CPU s/GB: distribution direct / berth / upstream behind berth | fetched upstream (MB) | unit |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for label, direct_key, target, key, metric, unit, higher in pt_table_rows(p["pull_passes"]):
        d, b = cell(res, "distribution", direct_key, metric), cell(res, target, key, metric)
        ratio = "—"
        if isinstance(d, (int, float)) and isinstance(b, (int, float)) and d > 0 and b > 0:
            ratio = f"{(b / d if higher else d / b):.2f}x"
        mark = " †" if noisy(res, key) or noisy(res, direct_key) else ""
        if key.endswith("manifest_get"):
            cpu = "server CPU s: " + " / ".join(fmt(cell(res, t, k, "server_cpu_s")) for t, k in (
                ("distribution", direct_key), (target, key)))
        else:
            cpu = " / ".join(fmt(cell(res, t, k, m)) for t, k, m in (
                ("distribution", direct_key, "cpu_s_per_gb"), (target, key, "cpu_s_per_gb"),
                (target, key, "upstream_cpu_s_per_gb")))
        out.append(f"| {label}{mark} | {fmt(d)} | {fmt(b)} | {ratio} | {cpu} "
                   f"| {fmt(cell(res, target, key, 'fetched_mb'))} | {unit} |")
    m = doc["machine"]
    warm = res.get("berth-cached", {}).get("warm", {}).get("median", {})
    lines = [
        f"## berth benchmark, pull-through cache ({doc['started']}, {'quick' if doc['quick'] else 'full'}, "
        f"median of {p['reps']}, {doc['elapsed_s']:.0f} s)",
        "",
        f"Command: `{doc.get('command') or 'bench/run.sh --pull-through'}`. "
        f"Machine: {m.get('nproc')} cores, {m.get('cpu_model')}, {m.get('mem_total_gib')} GiB, kernel {m.get('kernel')}. "
        f"Upstream: distribution (`docker-registry`) holding {p['pt_big_count']} x 64 MiB and "
        f"{p['small_count']} x 1 MiB blobs under `{PT_REPO}`; berth pulls them through "
        f"`{PT_UPSTREAM}/{PT_REPO}` (`[[upstream]] name = \"{PT_UPSTREAM}\"`). "
        f"Cached: a berth that pulled everything once before the runs; cold: a berth started on an empty "
        f"data dir before each repetition. Each run is checked against berth's `/metrics`: a cached run "
        f"fetched 0 bytes upstream, a cold one every byte it served.",
        "",
        "\n".join(out),
        "",
        f"Ratio > 1: the pull through berth is faster (or its latency lower) than the direct pull. "
        f"† other work on the machine "
        f"(neither a server nor the loadgen) used more than {NOISY} of a core during these runs.",
    ]
    if warm:
        lines.append(f"\nWarm-up of the cached berth (manifest GETs: status and Berth-Cache; counters after): {warm}.")
    runs = [x for r in res.values() for e in r.values() for x in e.get("runs", [])]
    other, secs = sum(x.get("other_cpu_s", 0) for x in runs), sum(x.get("secs", 0) for x in runs)
    if secs:
        lines.append(f"\nNoise: {other:.1f} CPU-s of other work during {secs:.0f} s of measured runs "
                     f"({100 * other / secs:.0f}% of one core); load average {doc['loadavg_start']:.2f} at start, "
                     f"{doc.get('loadavg_end', 0):.2f} at end.")
    errs = [(t, k, e["error"]) for t, r in res.items() for k, e in r.items() if e.get("error")]
    if errs:
        lines += ["", "Failures:"] + [f"- {t} / {k}: {e}" for t, k, e in errs]
    return "\n".join(lines)


def auth_report(doc, p):
    m = doc["machine"]
    lines = [
        f"## berth benchmark, auth ({doc['started']}, {'quick' if doc['quick'] else 'full'}, "
        f"median of {p['reps']}, {doc['elapsed_s']:.0f} s)",
        "",
        f"Machine: {m.get('nproc')} cores, {m.get('cpu_model')}, {m.get('mem_total_gib')} GiB, kernel {m.get('kernel')}. "
        f"One user, bcrypt cost 12 (`berth user add`); the loadgen logs in once per run before the timed part "
        f"(login: that setup, median over the manifest runs; a bcrypt check unless berth's 60 s cache still "
        f"held the password). push: {p['small_count']} blobs.",
        "",
        auth_table(doc["results"], doc["targets"]),
        "",
        f"† other work on the machine (neither server nor loadgen) used more than {NOISY} "
        "of a core during these runs: compare with care, or re-run on a quiet machine.",
    ]
    for t, r in doc["results"].items():
        runs = [x for e in r.values() for x in e.get("runs", [])]
        other = sum(x.get("other_cpu_s", 0) for x in runs)
        secs = sum(x.get("secs", 0) for x in runs)
        if secs:
            lines.append(f"\nNoise, {t}: {other:.1f} CPU-s of other work during {secs:.0f} s of measured runs "
                         f"({100 * other / secs:.0f}% of one core).")
    errs = [(t, k, e["error"]) for t, r in doc["results"].items() for k, e in r.items() if e.get("error")]
    if errs:
        lines += ["", "Failures:"] + [f"- {t} / {k}: {e}" for t, k, e in errs]
    return "\n".join(lines)


# ----------------------------------------------------------------- main ----

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=sorted(set(AUTH_TARGETS + GC_TARGETS + S3_TARGETS)), action="append",
                    help="run this registry only (repeatable); the auth ones need --auth")
    ap.add_argument("--auth", action="store_true",
                    help=f"auth rows instead of the full bench: {', '.join(AUTH_SCENARIOS)} against "
                         f"{', '.join(AUTH_TARGETS)}")
    ap.add_argument("--gc", action="store_true",
                    help=f"GC rows instead of the full bench: {', '.join(GC_SCENARIOS)} against "
                         f"{', '.join(GC_TARGETS)} (collector off / every second, both under a churn of garbage)")
    ap.add_argument("--pull-through", action="store_true",
                    help=f"pull-through cache rows instead of the full bench: pulls from distribution directly "
                         f"and through berth ({PT_UPSTREAM}/...), cached and cold")
    ap.add_argument("--s3", action="store_true",
                    help=f"S3 + PostgreSQL rows instead of the full bench: {', '.join(S3_TARGETS)} "
                         f"(Garage and PostgreSQL started in temp folders)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, small counts")
    ap.add_argument("--out", default=None, help="JSON results path (default bench/results/latest.json)")
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--berth", help="berth binary")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECS",
                    help="first wait up to SECS for other processes to go idle")
    ap.add_argument("--workdir", help="parent of the temporary data dirs (default: system temp)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in finally blocks
    if sum((args.auth, args.gc, args.pull_through, args.s3)) > 1:
        sys.exit("--auth, --gc, --pull-through and --s3 are separate runs")
    if args.pull_through and args.only:
        sys.exit("--pull-through runs all of its targets (distribution is the upstream)")
    allowed = (AUTH_TARGETS if args.auth else GC_TARGETS if args.gc else PT_TARGETS if args.pull_through
               else S3_TARGETS if args.s3 else TARGETS)
    targets = args.only or list(allowed)
    if any(t not in allowed for t in targets):
        sys.exit(f"{', '.join(t for t in targets if t not in allowed)}: not a target of this run")
    # berth user add writes the htpasswd file even when only distribution-htpasswd runs.
    needs_berth = any(t not in ("distribution", "distribution-s3") for t in targets)
    if needs_berth and not (args.berth and os.access(args.berth, os.X_OK)):
        sys.exit(f"berth binary not found: {args.berth}")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")
    p = s3_plan(args.quick) if args.s3 else plan(args.quick)
    lg = Loadgen(args.loadgen)
    t0 = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="berth-bench.", dir=args.workdir)
    doc = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "quick": args.quick,
           "auth": args.auth, "gc": args.gc, "pull_through": args.pull_through, "s3": args.s3, "targets": targets,
           "plan": p,
           "results": {}, "command": os.environ.get("BENCH_COMMAND"),
           "loadavg_start": loadavg()}
    try:
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        # First, so that the machine's limits are measured in the runs' memory state.
        # A smoke run skips it: it only checks that every scenario runs.
        if not args.quick:
            doc["memory"] = fill_free_memory(workdir)
        doc["machine"] = (machine_info() if args.auth or args.gc or args.pull_through or args.s3
                          else machine_limits(lg, p, workdir))
        doc["results"] = run_targets(targets, args, lg, p, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    doc["elapsed_s"] = time.monotonic() - t0
    doc["loadavg_end"] = loadavg()
    text = (auth_report(doc, p) if args.auth else gc_report(doc, p) if args.gc
            else pt_report(doc, p) if args.pull_through else s3_report(doc, p) if args.s3 else report(doc, p))
    doc["table_markdown"] = text
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(text)
    print(f"\nresults written to {out}")


if __name__ == "__main__":
    main()
