"""A tiny CRI client for tests/clients/cri.sh: one CRI call (or a short
kubelet-like sequence) per invocation, answer as JSON on stdout.

Usage: cri_client.py SOCKET COMMAND [ARGS...]; the generated cri_subset_pb2*
modules must be on PYTHONPATH. A failed call prints "CODE: details" on stderr
and exits 2, so the shell script can assert on the gRPC status.
"""

import json
import sys
import time

import grpc
from google.protobuf import json_format

import cri_subset_pb2 as cri
import cri_subset_pb2_grpc as cri_grpc

# Every call has a deadline: a pull that cannot succeed must fail, not hang.
CALL_TIMEOUT_S = 120


def as_json(message):
    """The message as a dict with zero values spelled out (exit_code 0,
    state SANDBOX_READY), which proto3's JSON mapping would otherwise drop."""
    try:
        return json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    except TypeError:  # protobuf < 5.26 names the option differently
        return json_format.MessageToDict(
            message, preserving_proto_field_name=True, including_default_value_fields=True
        )


def sandbox_config(name, log_dir):
    """A host-network pod, as the kubelet describes `hostNetwork: true`."""
    return cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name=name, uid=name + "-uid", namespace="default"),
        log_directory=log_dir,
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(
                namespace_options=cri.NamespaceOption(
                    network=cri.NODE, pid=cri.CONTAINER, ipc=cri.POD
                )
            )
        ),
    )


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 64
    socket, command, args = argv[1], argv[2], argv[3:]
    channel = grpc.insecure_channel("unix://" + socket)
    images = cri_grpc.ImageServiceStub(channel)
    runtime = cri_grpc.RuntimeServiceStub(channel)
    t = CALL_TIMEOUT_S

    if command == "version":
        out = runtime.Version(cri.VersionRequest(version="v1"), timeout=t)
    elif command == "pull":  # pull IMAGE [USER PASSWORD [SERVER_ADDRESS]]: credentials as the kubelet passes them
        auth = None
        if len(args) >= 3:
            auth = cri.AuthConfig(
                username=args[1], password=args[2], server_address=args[3] if len(args) > 3 else ""
            )
        out = images.PullImage(
            cri.PullImageRequest(image=cri.ImageSpec(image=args[0]), auth=auth), timeout=t
        )
    elif command == "image-status":  # image-status IMAGE
        out = images.ImageStatus(cri.ImageStatusRequest(image=cri.ImageSpec(image=args[0])), timeout=t)
    elif command == "remove-image":  # remove-image IMAGE
        out = images.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=args[0])), timeout=t)
    elif command == "run-pod":  # run-pod NAME LOG_DIR
        out = runtime.RunPodSandbox(
            cri.RunPodSandboxRequest(config=sandbox_config(args[0], args[1])), timeout=t
        )
    elif command == "pod-status":  # pod-status POD_ID
        out = runtime.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=args[0]), timeout=t)
    elif command == "create-container":  # create-container POD_ID POD_NAME LOG_DIR IMAGE NAME CMD...
        pod_id, pod_name, log_dir, image, name = args[:5]
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name),
            image=cri.ImageSpec(image=image),
            command=args[5:],
            log_path=name + "/0.log",
        )
        out = runtime.CreateContainer(
            cri.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=config, sandbox_config=sandbox_config(pod_name, log_dir)
            ),
            timeout=t,
        )
    elif command == "start-container":  # start-container ID
        out = runtime.StartContainer(cri.StartContainerRequest(container_id=args[0]), timeout=t)
    elif command == "wait-exited":  # wait-exited ID SECONDS: poll ContainerStatus like the kubelet's PLEG
        deadline = time.monotonic() + float(args[1])
        while True:
            out = runtime.ContainerStatus(cri.ContainerStatusRequest(container_id=args[0]), timeout=t)
            if out.status.state == cri.CONTAINER_EXITED or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    elif command == "stop-container":  # stop-container ID
        out = runtime.StopContainer(cri.StopContainerRequest(container_id=args[0], timeout=10), timeout=t)
    elif command == "remove-container":  # remove-container ID
        out = runtime.RemoveContainer(cri.RemoveContainerRequest(container_id=args[0]), timeout=t)
    elif command == "stop-pod":  # stop-pod POD_ID
        out = runtime.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=args[0]), timeout=t)
    elif command == "remove-pod":  # remove-pod POD_ID
        out = runtime.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=args[0]), timeout=t)
    else:
        print("unknown command: " + command, file=sys.stderr)
        return 64
    print(json.dumps(as_json(out)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except grpc.RpcError as err:
        print("%s: %s" % (err.code().name, err.details()), file=sys.stderr)
        sys.exit(2)
