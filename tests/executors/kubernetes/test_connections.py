"""``run.connections`` on Kubernetes: secrets and config maps as volumes at their mountPath or as ``envFrom``,
the connection's env added (the op's own wins), host paths and claims with a mountPath mounted."""

from __future__ import annotations

from typing import Any

from polynb.compiler.types import CompiledOp, ContainerSpec
from polynb.executors.kubernetes import manifests

CFG = manifests.ManifestConfig(namespace="ml", kernel_label="k1", kernel_id="k1")
UUID = "0123456789abcdef0123456789abcdef"

AWS = {"name": "aws", "kind": "s3", "schema": {"bucket": "s3://team"}, "secret": {"name": "aws-creds"},
       "env": [{"name": "AWS_REGION", "value": "eu-west-1"}, {"name": "MODE", "value": "from-connection"}]}  # fmt: skip
SETTINGS = {"name": "settings", "kind": "custom",
            "configMap": {"name": "team-settings", "mountPath": "/etc/team", "items": ["endpoint"]}}  # fmt: skip
DATA = {"name": "data", "kind": "volume_claim", "schema": {"claimName": "datasets", "mountPath": "/data",
                                                            "readOnly": True}}  # fmt: skip
KEYS = {"name": "keys", "kind": "custom", "secret": {"name": "ssh", "mountPath": "/keys", "defaultMode": 0o400}}


def pod(*connections: dict[str, Any]) -> dict[str, Any]:
    op = CompiledOp(
        uuid=UUID, name="train", kind="job",
        container=ContainerSpec(name="main", command=("python", "t.py"), env=(("MODE", "own"),)),
        placement=manifests.placement(UUID, "job", 0, CFG), connections=tuple(connections),
    )  # fmt: skip
    return manifests.pod_spec(op, CFG)


def test_connections_become_volumes_env_from_and_env_of_the_main_container() -> None:
    spec = pod(AWS, SETTINGS, DATA, KEYS)
    main = spec["containers"][0]
    assert main["envFrom"] == [{"secretRef": {"name": "aws-creds"}}]
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["AWS_REGION"] == "eu-west-1" and env["MODE"] == "own"
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    team = volumes[mounts["/etc/team"]["name"]]
    assert team["configMap"] == {"name": "team-settings", "items": [{"key": "endpoint", "path": "endpoint"}]}
    assert volumes[mounts["/data"]["name"]]["persistentVolumeClaim"] == {"claimName": "datasets"}
    assert mounts["/data"]["readOnly"] is True and mounts["/keys"]["readOnly"] is True
    assert volumes[mounts["/keys"]["name"]]["secret"] == {"secretName": "ssh", "defaultMode": 0o400}
    assert len(volumes) == len(spec["volumes"])  # one volume per name


def test_an_op_without_connections_is_unchanged() -> None:
    spec = pod()
    assert "envFrom" not in spec["containers"][0]
    assert len(pod(AWS, SETTINGS)["volumes"]) == len(spec["volumes"]) + 1  # the config map's; the secret is envFrom


def test_value_from_and_env_from_of_a_container_reach_the_pod() -> None:
    from polynb.compiler.compile import compile_op
    from polynb.spec.load import load_text
    from polynb.spec.models import Component

    component = load_text(
        "kind: component\nname: c\nrun:\n  kind: job\n  container:\n    command: [env]\n"
        "    envFrom: [{configMapRef: {name: cm}}]\n"
        "    env: [{name: K, valueFrom: {secretKeyRef: {name: s, key: k}}}, {name: P, value: plain}]\n",
        "c.yaml",
    )
    assert isinstance(component, Component)
    op = compile_op(uuid=UUID, name="c", component=component, inputs={}, contexts={},
                    placement=manifests.placement(UUID, "job", 0, CFG), globals_={})  # fmt: skip
    main = manifests.pod_spec(op, CFG)["containers"][0]
    assert main["envFrom"] == [{"configMapRef": {"name": "cm"}}]
    env = {e["name"]: e for e in main["env"]}
    assert env["K"] == {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    assert env["P"] == {"name": "P", "value": "plain"}
