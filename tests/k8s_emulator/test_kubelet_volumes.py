"""Volumes and environment on the executing kubelet: what one container writes another sees exactly when a
cluster would let it (emptyDir per pod, claims across pods, ReadWriteOnce per node), ConfigMaps and Secrets
as files and variables, and a missing reference fails as the kubelet fails it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import wait_pod

executing_emulator = testkit.executing_emulator


@pytest.fixture
def core(executing_emulator: Emulator) -> Iterator[Any]:
    assert executing_emulator.kubeconfig is not None
    api = config.new_client_from_config(str(executing_emulator.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def sh(name: str, script: str, *, image: str = "busybox:1.36") -> dict[str, Any]:
    return {"name": name, "image": image, "command": ["sh", "-c", script]}


def pod(name: str, *containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **spec: Any) -> Any:
    body: dict[str, Any] = {"restartPolicy": "Never", "containers": list(containers), **spec}
    if init:
        body["initContainers"] = list(init)
    return {"metadata": {"name": name}, "spec": body}


def claim(name: str, mode: str) -> Any:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": "1Gi"}}},
    }


def log(core: Any, name: str, container: str = "main") -> str:
    return str(core.read_namespaced_pod_log(name, "default", container=container))


def test_empty_dir_is_shared_by_the_pods_containers_only(core: Any) -> None:
    scratch = [{"name": "scratch", "mountPath": "/scratch"}]
    core.create_namespaced_pod(
        "default",
        pod(
            "writer",
            {**sh("main", "cat /scratch/note"), "volumeMounts": scratch},
            init=({**sh("init", "echo from-init > /scratch/note"), "volumeMounts": scratch},),
            volumes=[{"name": "scratch", "emptyDir": {}}],
        ),
    )
    wait_pod(core, "writer", "Succeeded")
    assert log(core, "writer") == "from-init\n"
    core.create_namespaced_pod(
        "default",
        pod(
            "other",
            {**sh("main", "ls /scratch; cat /scratch/note"), "volumeMounts": scratch},
            volumes=[{"name": "scratch", "emptyDir": {}}],
        ),
    )
    wait_pod(core, "other", "Failed")
    assert "No such file" in log(core, "other")


def test_a_read_write_many_claim_is_shared_across_pods_and_nodes(core: Any) -> None:
    core.create_namespaced_persistent_volume_claim("default", claim("shared", "ReadWriteMany"))
    data = [{"name": "data", "mountPath": "/data"}]
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]
    core.create_namespaced_pod(
        "default",
        pod(
            "first",
            {**sh("main", "echo kept > /data/out"), "volumeMounts": data},
            volumes=volumes,
            nodeName="emu-node-1",
        ),
    )
    wait_pod(core, "first", "Succeeded")
    core.create_namespaced_pod(
        "default",
        pod("second", {**sh("main", "cat /data/out"), "volumeMounts": data}, volumes=volumes, nodeName="emu-node-2"),
    )
    wait_pod(core, "second", "Succeeded")
    assert log(core, "second") == "kept\n"


def test_a_read_write_once_claim_cannot_attach_on_a_second_node_while_in_use(
    executing_emulator: Emulator, core: Any
) -> None:
    core.create_namespaced_persistent_volume_claim("default", claim("once", "ReadWriteOnce"))
    data = [{"name": "data", "mountPath": "/data"}]
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "once"}}]
    core.create_namespaced_pod(
        "default",
        pod("holder", {**sh("main", "sleep 300"), "volumeMounts": data}, volumes=volumes, nodeName="emu-node-1"),
    )
    wait_pod(core, "holder", "Running")
    core.create_namespaced_pod(
        "default",
        pod("blocked", {**sh("main", "echo attached"), "volumeMounts": data}, volumes=volumes, nodeName="emu-node-2"),
    )

    def multi_attach() -> Any:
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=blocked").items
        return [e for e in events if e.reason == "FailedAttachVolume"]

    events = testkit.eventually(multi_attach, what="a Multi-Attach event")
    assert "Multi-Attach error" in events[0].message and "holder" in events[0].message
    blocked = core.read_namespaced_pod("blocked", "default")
    assert blocked.status.phase == "Pending"
    assert blocked.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    core.delete_namespaced_pod("holder", "default", grace_period_seconds=1)
    wait_pod(core, "blocked", "Succeeded")  # attaches once the holder is gone
    assert log(core, "blocked") == "attached\n"


def test_same_node_pods_share_a_read_write_once_claim(core: Any) -> None:
    core.create_namespaced_persistent_volume_claim("default", claim("node-local", "ReadWriteOnce"))
    data = [{"name": "data", "mountPath": "/data"}]
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "node-local"}}]
    for name in ("a", "b"):
        core.create_namespaced_pod(
            "default",
            pod(
                name,
                {**sh("main", f"echo {name} >> /data/log"), "volumeMounts": data},
                volumes=volumes,
                nodeName="emu-node-1",
            ),
        )
        wait_pod(core, name, "Succeeded")


def test_a_pod_whose_claim_does_not_exist_is_unschedulable(core: Any) -> None:
    volumes = [{"name": "data", "persistentVolumeClaim": {"claimName": "missing"}}]
    core.create_namespaced_pod(
        "default",
        pod("orphan", {**sh("main", "true"), "volumeMounts": [{"name": "data", "mountPath": "/d"}]}, volumes=volumes),
    )

    def unschedulable(p: Any) -> bool:
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in p.status.conditions or ())

    found = wait_pod(core, "orphan", unschedulable)
    assert 'persistentvolumeclaim "missing" not found' in found.status.conditions[0].message
    core.create_namespaced_persistent_volume_claim("default", claim("missing", "ReadWriteOnce"))
    wait_pod(core, "orphan", "Succeeded")


def test_config_map_and_secret_volumes_are_files(core: Any) -> None:
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"a.yaml": "lr: 0.1\n", "b.txt": "bee"}}
    )
    core.create_namespaced_secret(
        "default", {"metadata": {"name": "creds"}, "data": {"token": base64.b64encode(b"s3cret").decode()}}
    )
    mounts = [
        {"name": "settings", "mountPath": "/etc/settings"},
        {"name": "creds", "mountPath": "/var/creds"},
        {"name": "settings", "mountPath": "/opt/only.yaml", "subPath": "a.yaml"},
    ]
    script = (
        "cat /etc/settings/a.yaml /etc/settings/b.txt; echo; cat /var/creds/key; echo; ls /var/creds; "
        "cat /opt/only.yaml; echo x > /etc/settings/c"
    )
    core.create_namespaced_pod(
        "default",
        pod(
            "files",
            {**sh("main", script), "volumeMounts": mounts},
            volumes=[
                {"name": "settings", "configMap": {"name": "settings"}},
                {"name": "creds", "secret": {"secretName": "creds", "items": [{"key": "token", "path": "key"}]}},
            ],
        ),
    )
    wait_pod(core, "files", "Failed")  # the last write fails: configMap and secret volumes are read-only
    lines = log(core, "files").splitlines()
    errors = [line for line in lines if line.endswith("Read-only file system")]  # stderr: its own stream
    assert [line for line in lines if line not in errors] == ["lr: 0.1", "bee", "s3cret", "key", "lr: 0.1"]
    assert len(errors) == 1


def test_a_missing_config_map_volume_waits_with_failed_mount(executing_emulator: Emulator, core: Any) -> None:
    core.create_namespaced_pod(
        "default",
        pod(
            "mountless",
            {**sh("main", "cat /cfg/k; echo"), "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]},
            volumes=[{"name": "cfg", "configMap": {"name": "later"}}],
        ),
    )

    def failed_mount() -> Any:
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=mountless").items
        return [e for e in events if e.reason == "FailedMount"]

    events = testkit.eventually(failed_mount, what="a FailedMount event")
    assert 'configmap "later" not found' in events[0].message
    core.create_namespaced_config_map("default", {"metadata": {"name": "later"}, "data": {"k": "v"}})
    wait_pod(core, "mountless", "Succeeded")
    assert log(core, "mountless") == "v\n"


def test_host_path_is_the_hosts_folder(core: Any, tmp_path: Any) -> None:
    shared = tmp_path / "host-data"
    core.create_namespaced_pod(
        "default",
        pod(
            "hosty",
            {**sh("main", "echo on-host > /mnt/out"), "volumeMounts": [{"name": "h", "mountPath": "/mnt"}]},
            volumes=[{"name": "h", "hostPath": {"path": str(shared), "type": "DirectoryOrCreate"}}],
        ),
    )
    wait_pod(core, "hosty", "Succeeded")
    assert (shared / "out").read_text() == "on-host\n"


def test_env_values_refs_and_env_from(core: Any) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"LR": "0.1", "MODE": "fast"}})
    core.create_namespaced_secret("default", {"metadata": {"name": "sec"}, "stringData": {"TOKEN": "abc"}})
    container = {
        **sh("main", 'echo "$POD $NS $LR $TOKEN $CFG_MODE $GREETING $OPT|"', image="busybox:1.36"),
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CFG_"}],
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "LR", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "LR"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "TOKEN"}}},
            {"name": "GREETING", "value": "hi-$(POD)"},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        ],
    }
    core.create_namespaced_pod("default", pod("envy", container))
    wait_pod(core, "envy", "Succeeded")
    assert log(core, "envy") == "envy default 0.1 abc fast hi-envy |\n"


def test_command_and_args_expand_variables_without_a_shell(core: Any) -> None:
    container = {
        "name": "main",
        "image": "python:3.11-slim",
        "command": ["python3", "-c", "import sys; print(sys.argv[1:])"],
        "args": ["$(WHO)", "$$(WHO)", "$(UNDEFINED)", "*"],
        "env": [{"name": "WHO", "value": "world"}],
    }
    core.create_namespaced_pod("default", pod("argv", container))
    wait_pod(core, "argv", "Succeeded")
    assert log(core, "argv") == "['world', '$(WHO)', '$(UNDEFINED)', '*']\n"


def test_a_missing_secret_key_is_a_create_container_config_error(core: Any) -> None:
    core.create_namespaced_secret("default", {"metadata": {"name": "partial"}, "stringData": {"a": "1"}})
    container = {
        **sh("main", "echo $B"),
        "env": [{"name": "B", "valueFrom": {"secretKeyRef": {"name": "partial", "key": "b"}}}],
    }
    core.create_namespaced_pod("default", pod("configless", container))

    def config_error(p: Any) -> bool:
        waiting = p.status.container_statuses and p.status.container_statuses[0].state.waiting
        return bool(waiting) and waiting.reason == "CreateContainerConfigError"

    stuck = wait_pod(core, "configless", config_error)
    assert stuck.status.container_statuses[0].state.waiting.message == "couldn't find key b in Secret default/partial"
    assert stuck.status.phase == "Pending"
    data = {k: base64.b64encode(v).decode() for k, v in (("a", b"1"), ("b", b"2"))}
    core.replace_namespaced_secret("partial", "default", {"metadata": {"name": "partial"}, "data": data})
    wait_pod(core, "configless", "Succeeded")  # the kubelet retries the start
    assert log(core, "configless") == "2\n"


def test_a_containers_writes_to_its_image_files_stay_in_that_container(core: Any) -> None:
    core.create_namespaced_pod("default", pod("edits", sh("main", "echo intruder:x:7:7::/:/bin/sh >> /etc/passwd")))
    wait_pod(core, "edits", "Succeeded")
    core.create_namespaced_pod("default", pod("fresh", sh("main", "cat /etc/passwd")))
    wait_pod(core, "fresh", "Succeeded")
    assert "intruder" not in log(core, "fresh")
