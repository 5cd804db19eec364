"""Structural checks on one rendered kustomization (kubectl kustomize output).

Usage: kustomize_check.py RENDERED.yaml CONFIG_OUT.toml [EXPECT_SERVICE_TYPE]
Prints nothing and exits 0 when the manifests say what berth needs; otherwise
prints each problem and exits 1. Writes the ConfigMap's config.toml to
CONFIG_OUT.toml so that the caller can start the real berth with it.
"""
import sys
import tomllib

import yaml


def main(rendered, config_out, service_type=None):
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    problems = []

    def need(cond, what):
        if not cond:
            problems.append(what)

    for kind in ["Namespace", "ConfigMap", "Deployment", "Service", "PersistentVolumeClaim"]:
        need(len(by_kind.get(kind, [])) == 1, f"exactly one {kind}")
    if problems:
        return problems
    (cm,) = by_kind["ConfigMap"]
    (dep,) = by_kind["Deployment"]
    (svc,) = by_kind["Service"]
    (pvc,) = by_kind["PersistentVolumeClaim"]
    for d in docs:
        if d["kind"] != "Namespace":
            need(d["metadata"].get("namespace") == "berth", f"{d['kind']} in namespace berth")
        need(d["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "berth",
             f"{d['kind']} labelled app.kubernetes.io/name=berth")

    text = cm["data"]["config.toml"]
    open(config_out, "w").write(text)
    config = tomllib.loads(text)
    data_dir = config.get("data_dir")
    addr_port = int(config.get("addr", "").rsplit(":", 1)[-1] or 0)

    spec = dep["spec"]
    pod = spec["template"]["spec"]
    need(spec.get("replicas") == 1, "one replica (one writer per data folder)")
    need(spec.get("strategy", {}).get("type") == "Recreate", "Recreate strategy")
    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    need(ports.get("registry") == addr_port, f"container port 'registry' = config addr port {addr_port}")
    need(c.get("image", "").split(":")[0].endswith("berth"), "image named berth")
    need(c.get("args") == ["serve", "--config", "/etc/berth/config.toml"], "serve --config /etc/berth/config.toml")

    def probe_target(name):
        get = c.get(name, {}).get("httpGet", {})
        port = get.get("port")
        port = ports.get(port, port)
        return get.get("path"), port

    need(probe_target("livenessProbe") == ("/healthz", addr_port), "liveness GET /healthz on the registry port")
    need(probe_target("readinessProbe") == ("/readyz", addr_port), "readiness GET /readyz on the registry port")
    need(probe_target("startupProbe") == ("/healthz", addr_port), "startup GET /healthz on the registry port")
    res = c.get("resources", {})
    need(res.get("requests", {}).keys() >= {"cpu", "memory"}, "cpu and memory requests")
    need(res.get("limits", {}).keys() >= {"cpu", "memory"}, "cpu and memory limits")

    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True, "pod runAsNonRoot")
    need(psc.get("runAsUser", 0) != 0 and psc.get("runAsGroup", 0) != 0, "pod runs as a non-zero uid/gid")
    need(psc.get("fsGroup") == psc.get("runAsGroup"), "fsGroup makes the volume writable by the pod's group")
    need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")
    need(csc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    need(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    need(csc.get("capabilities", {}).get("drop") == ["ALL"], "all capabilities dropped")
    need(pod.get("enableServiceLinks") is False, "no service-link variables (BERTH_PORT=tcp://...) in berth's environment")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    need(grace > config.get("shutdown_grace_secs", 30), "termination grace above berth's shutdown grace")

    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    data_vol = volumes.get(mounts.get(data_dir), {})
    need(data_vol.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"],
         f"the PVC is mounted at the config's data_dir {data_dir}")
    conf_vol = volumes.get(mounts.get("/etc/berth"), {})
    need(conf_vol.get("configMap", {}).get("name") == cm["metadata"]["name"], "the ConfigMap is mounted at /etc/berth")
    need(pvc["spec"].get("accessModes") == ["ReadWriteOnce"], "PVC ReadWriteOnce")

    selector = dep["spec"]["selector"]["matchLabels"]
    pod_labels = spec["template"]["metadata"]["labels"]
    need(svc["spec"].get("selector") and svc["spec"]["selector"].items() <= pod_labels.items(),
         "the Service selects the pod")
    need(selector.items() <= pod_labels.items(), "the Deployment selects its pods")
    (sp,) = svc["spec"]["ports"]
    need(sp.get("name") == "registry" and sp.get("port") == 5000, "Service port 'registry' 5000")
    need(sp.get("targetPort") in ("registry", addr_port), "Service targets the registry port")
    if service_type:
        need(svc["spec"].get("type", "ClusterIP") == service_type, f"Service type {service_type}")
        if service_type == "NodePort":
            need(sp.get("nodePort") == 30500, "nodePort 30500 (the port the README and kind-cluster.yaml name)")

    for ing in by_kind.get("Ingress", []):
        a = ing["metadata"].get("annotations", {})
        need(a.get("nginx.ingress.kubernetes.io/proxy-body-size") == "0", "Ingress: unlimited body size")
        need(int(a.get("nginx.ingress.kubernetes.io/proxy-read-timeout", "0")) >= 600, "Ingress: long read timeout")
        need(int(a.get("nginx.ingress.kubernetes.io/proxy-send-timeout", "0")) >= 600, "Ingress: long send timeout")
        need(ing["spec"].get("tls") and ing["spec"]["tls"][0].get("secretName"), "Ingress: TLS secret")
        backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        need(backend.get("name") == svc["metadata"]["name"], "Ingress: routes to the Service")
    return problems


if __name__ == "__main__":
    found = main(*sys.argv[1:])
    for p in found:
        print("missing:", p)
    sys.exit(1 if found else 0)
