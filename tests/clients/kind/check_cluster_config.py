"""Validate a kind cluster config (stdin) against cluster-v1alpha4.schema.json,
then check its containerd patches are TOML that set the CRI registry's
config_path to /etc/containerd/certs.d. Exit 1 with the reasons otherwise."""
import json
import pathlib
import sys
import tomllib

import jsonschema
import yaml

schema = json.loads((pathlib.Path(__file__).parent / "cluster-v1alpha4.schema.json").read_text())
config = yaml.safe_load(sys.stdin)
errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(config)]
paths = []
for patch in config.get("containerdConfigPatches", []):
    try:
        paths.append(tomllib.loads(patch)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"])
    except (tomllib.TOMLDecodeError, KeyError) as e:
        errors.append(f"containerd patch {patch!r}: {e!r}")
if "/etc/containerd/certs.d" not in paths:
    errors.append(f"no containerd patch sets config_path to /etc/containerd/certs.d: {paths}")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
