"""Manifest rules of issue 10: the ``restricted`` security profile and ``environment.restartPolicy``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from k8s_emulator.admission import restricted_problems

from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep
from polynb.executors.kubernetes import manifests
from polynb.executors.kubernetes.init import FOLDERS_CONTAINER

CFG = manifests.ManifestConfig(namespace="ml", kernel_label="k1", kernel_id="k1")
RESTRICTED = dataclasses.replace(CFG, security_profile="restricted")
UUID = "0123456789abcdef0123456789abcdef"


def op(**kw: Any) -> CompiledOp:
    kind = kw.pop("kind", "job")
    return CompiledOp(
        uuid=UUID,
        name="train",
        kind=kind,
        container=kw.pop("container", ContainerSpec(name="main", command=("python", "t.py"))),
        placement=manifests.placement(UUID, kind, kw.pop("ports", 0), CFG),
        **kw,
    )


def every_container(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", ()), *spec["containers"]]


def test_the_restricted_profile_meets_pod_security_restricted() -> None:
    compiled = op(
        init=(
            InitStep(kind="file", spec={"content": "hi", "filename": "a.txt"}),
            InitStep(kind="git", spec={"url": "https://example.com/r.git"}),
        ),
        sidecars=(ContainerSpec(name="shipper", image="fluent:1"),),
    )
    assert restricted_problems(manifests.pod_spec(compiled, CFG))  # the default profile does not
    spec = manifests.pod_spec(compiled, RESTRICTED)
    assert restricted_problems(spec) == []
    for container in every_container(spec):
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["runAsNonRoot"] is True and ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    generated = {c["name"]: c["securityContext"].get("runAsUser") for c in every_container(spec)}
    # polynb's own containers run stock images as root: they get a non-root uid; the user's keep theirs.
    assert generated == {"init-0-file": 65534, "init-1-git": 65534, "shipper": None, "main": None}


def test_a_containers_own_security_context_wins() -> None:
    own = ContainerSpec(name="main", command=("t",), k8s={"securityContext": {"runAsUser": 1000}})
    spec = manifests.pod_spec(op(container=own), RESTRICTED)
    ctx = spec["containers"][0]["securityContext"]
    assert ctx["runAsUser"] == 1000 and ctx["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize(("kind", "wanted", "written"), [
    ("job", None, "Never"),
    ("job", "Never", "Never"),
    ("job", "OnFailure", "OnFailure"),
    ("service", "OnFailure", "Never"),  # refused by `polynb check`; a service's restarts are the scheduler's
])  # fmt: skip
def test_restart_policy_from_the_environment(kind: str, wanted: str | None, written: str) -> None:
    environment = {"restartPolicy": wanted} if wanted else {}
    compiled = op(kind=kind, ports=1 if kind == "service" else 0, environment=environment)
    assert manifests.pod_spec(compiled, CFG)["restartPolicy"] == written


def test_every_container_writes_event_markers_when_an_op_awaits_the_runs_events() -> None:
    from polynb.executors.base import EVENTS_AWAITED_LABEL
    from polynb.runtime.tracking import EVENTS_STDOUT_ENV

    def markers(spec: dict[str, Any]) -> dict[str, bool]:
        # (polynb's container making the run's folders writes no events, and has no env)
        ops = [c for c in every_container(spec) if c["name"] != FOLDERS_CONTAINER]
        return {c["name"]: any(e["name"] == EVENTS_STDOUT_ENV for e in c["env"]) for c in ops}

    parts: dict[str, Any] = {
        "init": (InitStep(kind="container", container=ContainerSpec(name="prepare", image="python:3.11")),),
        "sidecars": (ContainerSpec(name="shipper", image="python:3.11"),),
    }
    awaited = manifests.pod_spec(op(labels={EVENTS_AWAITED_LABEL: "true"}, **parts), CFG)
    names = markers(awaited)
    assert set(names.values()) == {True} and "shipper" in names and "main" in names and len(names) == 3
    assert set(markers(manifests.pod_spec(op(**parts), CFG)).values()) == {False}  # stdout stays the program's
