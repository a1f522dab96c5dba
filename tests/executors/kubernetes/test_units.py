"""Pure parts of the kubernetes executor: names, manifests, the status rules, log resumption, the init
script and the port-forward's byte pumping (no API server involved)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep, Placement, TerminationSpec
from polynb.connections import GIT_CREDENTIAL_HELPER
from polynb.executors.kubernetes import manifests, names
from polynb.executors.kubernetes.init import GIT_SCRIPT, INIT_SCRIPT, init_container
from polynb.executors.kubernetes.logs import Resume, split_timestamp, ts_key
from polynb.executors.kubernetes.portforward import PortForward
from polynb.executors.kubernetes.status import interpret_job, interpret_pod, interpret_restarted, parse_outputs

CFG = manifests.ManifestConfig(namespace="ml", kernel_label="k1", kernel_id="k1")
UUID = "0123456789abcdef0123456789abcdef"


def op(**kw: Any) -> CompiledOp:
    kind = kw.pop("kind", "job")
    return CompiledOp(
        uuid=UUID,
        name=kw.pop("name", "train"),
        kind=kind,
        container=kw.pop("container", ContainerSpec(name="main", command=("python", "t.py"), env=(("A", "1"),))),
        placement=manifests.placement(UUID, kind, kw.pop("ports", 0), CFG),
        **kw,
    )


# -- names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op_name", "expected"),
    [
        ("train", "train-01234567"),
        ("Train_Model v2", "train-model-v2-01234567"),
        ("9lives", "op-9lives-01234567"),
        ("", "op-01234567"),
    ],
)
def test_resource_names_are_dns_labels(op_name: str, expected: str) -> None:
    assert names.resource_name(op_name, UUID) == expected


def test_long_names_are_shortened_with_a_hash() -> None:
    long = "x" * 200
    name = names.resource_name(long, UUID, attempt=12)
    assert len(name) <= 63 and name.endswith("-01234567-a12")
    assert name != names.resource_name("x" * 199, UUID, attempt=12)


def test_label_values() -> None:
    assert names.label_value("ok.value_1") == "ok.value_1"
    value = names.label_value("/home/me/notebooks and more" * 3)
    assert names.is_label_value(value) and len(value) <= 63
    assert names.split_labels({"polynb.io/base-dir": "/home/me", "team": "vision"}) == (
        {"team": "vision"},
        {"polynb.io/base-dir": "/home/me"},
    )


# -- manifests ------------------------------------------------------------------------------------------


def test_job_manifest() -> None:
    compiled = op(
        termination=TerminationSpec(timeout=100.5, ttl=60),
        labels={"polynb.io/base-dir": "/work/nb", "team": "vision"},
        environment={
            "nodeSelector": {"gpu": "a100"},
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "serviceAccountName": "trainer",
            "imagePullSecrets": ["regcred"],
            "annotations": {"note": "x"},
            "labels": {"env": "dev"},
        },
        volumes=({"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}},),
        container=ContainerSpec(
            name="main",
            command=("python",),
            args=("t.py",),
            env=(("POLYAXON_RUN_UUID", "bad"),),
            k8s={
                "resources": {"limits": {"nvidia.com/gpu": 1}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
        ),
    )
    job = manifests.job_manifest(compiled, CFG, attempt=2)
    meta, spec = job["metadata"], job["spec"]
    assert meta["name"] == "train-01234567-a2" and meta["namespace"] == "ml"
    assert meta["labels"] == {
        "team": "vision",
        "env": "dev",
        "app.kubernetes.io/managed-by": "polynb",
        "app.kubernetes.io/name": "train",
        "polynb.io/run": UUID,
        "polynb.io/kernel": "k1",
        "polynb.io/attempt": "2",
        "polynb.io/kind": "job",
        "polynb.io/role": "run",
    }
    assert json.loads(meta["annotations"]["polynb.io/labels"]) == {"polynb.io/base-dir": "/work/nb"}
    assert meta["annotations"]["note"] == "x" and meta["annotations"]["polynb.io/name"] == "train"
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (0, 131, 60)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"gpu": "a100"} and pod["serviceAccountName"] == "trainer"
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert [v["name"] for v in pod["volumes"]] == ["polynb-artifacts", "polynb-runtime", "data"]
    assert pod["volumes"][0] == {"name": "polynb-artifacts", "emptyDir": {}}
    main = pod["containers"][0]
    assert main["image"] == "python:3.11-slim" and main["command"] == ["python"] and main["args"] == ["t.py"]
    assert main["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert [m["mountPath"] for m in main["volumeMounts"]] == ["/plx-context/artifacts", "/polynb-runtime", "/data"]
    env = {e["name"]: e["value"] for e in main["env"]}
    assert env["POLYAXON_RUN_UUID"] == UUID  # the run's variables win over the container's
    assert env["PYTHONPATH"] == "/polynb-runtime" and env["POLYNB_TERMINATION_LOG_LIMIT"] == "4096"
    assert main["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_sidecars_are_native_or_plain() -> None:
    compiled = op(
        sidecars=(ContainerSpec(name="Log Shipper", image="fluent:1"),),
        init=(InitStep(kind="file", spec={"content": "hi", "filename": "a.txt"}),),
    )
    native = manifests.pod_spec(compiled, CFG)
    assert [c["name"] for c in native["initContainers"]] == ["init-0-file", "log-shipper"]
    assert native["initContainers"][1]["restartPolicy"] == "Always"
    plain_cfg = manifests.ManifestConfig(namespace="ml", kernel_label="k", kernel_id="k", native_sidecars=False)
    plain = manifests.pod_spec(compiled, plain_cfg)
    assert [c["name"] for c in plain["containers"]] == ["main", "log-shipper"]
    assert "restartPolicy" not in plain["containers"][1]


def test_service_manifests_and_placement() -> None:
    compiled = op(kind="service", ports=2, name="tensorboard", termination=TerminationSpec(timeout=7200))
    assert compiled.placement.ports == (6006, 6007)
    assert compiled.placement.base_url == f"http://svc-{UUID[:12]}.ml.svc:6006/"
    assert compiled.placement.run_outputs_path == f"/plx-context/artifacts/{UUID}/outputs"
    pod = manifests.service_pod_manifest(compiled, CFG, 1)
    assert pod["kind"] == "Pod" and pod["spec"]["activeDeadlineSeconds"] == 7230
    assert pod["spec"]["containers"][0]["ports"] == [
        {"containerPort": 6006, "name": "p0"},
        {"containerPort": 6007, "name": "p1"},
    ]
    created = {**pod, "metadata": {**pod["metadata"], "uid": "u-1"}}
    svc = manifests.service_manifest(compiled, CFG, 1, created)
    assert svc["metadata"]["name"] == f"svc-{UUID[:12]}"
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert [p["port"] for p in svc["spec"]["ports"]] == [6006, 6007]


def test_git_init_passes_values_as_arguments() -> None:
    url = "https://host/org/repo.git;touch${IFS}/pwned"
    step = InitStep(kind="git", spec={"url": url, "revision": "v1", "flags": ["--depth 1"]}, path="code")
    container = init_container(
        step, 0, run_dir="/a/u", artifacts_root="/a", tools_image="t", git_image="g", default_image="d"
    )
    assert container["image"] == "g"
    assert container["command"] == [
        "sh", "-c", GIT_SCRIPT, "git-init", url, "/a/u/code", "v1", GIT_CREDENTIAL_HELPER, "--depth", "1"
    ]  # fmt: skip
    assert "$1" in GIT_SCRIPT and url not in GIT_SCRIPT  # a fixed script; values only as "$1", "$2", ...
    with pytest.raises(ValueError, match="looks like an option"):
        init_container(
            InitStep(kind="git", spec={"url": "u", "revision": "--upload-pack=x"}),
            0,
            run_dir="/a",
            artifacts_root="/a",
            tools_image="t",
            git_image="g",
            default_image="d",
        )


def test_the_init_script_runs(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    (root / "prev" / "outputs").mkdir(parents=True)
    (root / "prev" / "outputs" / "model.txt").write_text("weights")
    run_dir = root / UUID

    def run(kind: str, spec: dict[str, Any], path: str | None = None) -> None:
        payload = {"kind": kind, "spec": spec, "path": path, "run_dir": str(run_dir), "artifacts_root": str(root)}
        subprocess.run(
            [sys.executable, "-c", INIT_SCRIPT],
            env={**os.environ, "POLYNB_INIT": json.dumps(payload)},
            check=True,
            capture_output=True,
        )

    run("file", {"content": "echo hi", "filename": "run.sh", "chmod": "+x"})
    run("artifacts", {"files": ["prev/outputs/model.txt"]})
    run("tensorboard", {"uuids": ["prev"]})
    assert (run_dir / "run.sh").read_text() == "echo hi" and os.access(run_dir / "run.sh", os.X_OK)
    assert (run_dir / "prev" / "outputs" / "model.txt").read_text() == "weights"
    assert os.readlink(run_dir / "tensorboard" / "prev") == str(root / "prev" / "outputs" / "tensorboard")


# -- status rules ---------------------------------------------------------------------------------------


def pod(
    phase: str = "Pending",
    *,
    main: dict[str, Any] | None = None,
    inits: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    node: bool = True,
    **status: Any,
) -> dict[str, Any]:
    return {
        "spec": {
            "nodeName": "n" if node else None,
            "initContainers": [
                {"name": i["name"], **({"restartPolicy": "Always"} if i.get("sidecar") else {})} for i in inits or ()
            ],
        },
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "containerStatuses": [{"name": "main", "state": main}] if main else [],
            "initContainerStatuses": [{"name": i["name"], "state": i["state"]} for i in inits or ()],
            **status,
        },
    }


RUNNING = {"running": {"startedAt": "2024-05-01T10:00:00Z"}}


@pytest.mark.parametrize(
    ("obj", "status", "reason"),
    [
        (pod(node=False), "scheduled", "PodCreated"),
        (
            pod(
                node=False,
                conditions=[
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}
                ],
            ),
            "unschedulable",
            "Unschedulable",
        ),
        (
            pod(inits=[{"name": "i", "state": RUNNING}], main={"waiting": {"reason": "PodInitializing"}}),
            "starting",
            "Initializing",
        ),
        (
            pod("Running", main=RUNNING, inits=[{"name": "s", "sidecar": True, "state": RUNNING}]),
            "running",
            "ContainerStarted",
        ),
        (pod(main={"waiting": {"reason": "ErrImagePull", "message": "x"}}), "warning", "ErrImagePull"),
        (pod(main={"waiting": {"reason": "ImagePullBackOff", "message": "x"}}), "warning", "ImagePullBackOff"),
        (pod(main={"waiting": {"reason": "CreateContainerConfigError"}}), "failed", "CreateContainerConfigError"),
        (pod(inits=[{"name": "i", "state": {"terminated": {"exitCode": 2}}}]), "failed", "InitFailed"),
        (
            pod(
                "Running",
                main={"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                inits=[{"name": "s", "sidecar": True, "state": RUNNING}],
            ),
            "failed",
            "OOMKilled",
        ),
        (pod("Failed", main=RUNNING, reason="Evicted", message="node low on memory"), "failed", "Evicted"),
        (pod("Succeeded", main={"terminated": {"exitCode": 0, "message": '{"a": 1}'}}), "succeeded", "Completed"),
    ],
)
def test_pod_status_rules(obj: dict[str, Any], status: str, reason: str) -> None:
    observed = interpret_pod(obj, "main")
    assert (observed.status, observed.reason) == (status, reason)


def test_outputs_from_the_termination_message() -> None:
    assert parse_outputs('{"loss": 0.1}') == ({"loss": 0.1}, "")
    assert parse_outputs("") == ({}, "")
    assert parse_outputs("Traceback...") == (None, "Traceback...")
    done = interpret_pod(pod("Succeeded", main={"terminated": {"exitCode": 0, "message": "[1, 2]"}}), "main")
    assert done.outputs is None and "not a JSON object" in done.message


def test_outputs_too_large_fail_the_run_loudly() -> None:
    # polynb.tracking refused them and said so in the termination message (exit 1): reason OutputsTooLarge.
    said = "OutputsTooLarge: the outputs are 5000 bytes as JSON; ... at most 4096 bytes"
    refused = interpret_pod(pod("Failed", main={"terminated": {"exitCode": 1, "message": said}}), "main")
    assert (refused.status, refused.reason, refused.message) == ("failed", "OutputsTooLarge", said)
    # Written straight to /dev/termination-log, the JSON was cut by the kubelet at the limit: lost, so failed.
    cut = '{"values": [' + "1, " * 2000
    cut = cut[:4096]
    lost = interpret_pod(pod("Succeeded", main={"terminated": {"exitCode": 0, "message": cut}}), "main")
    assert (lost.status, lost.reason) == ("failed", "OutputsTooLarge")
    assert "cut by the kubelet at 4096 bytes" in lost.message
    # A failed container's message may be its log's tail, JSON lines included: that failure is its own.
    crashed = interpret_pod(pod("Failed", main={"terminated": {"exitCode": 1, "message": cut}}), "main")
    assert (crashed.status, crashed.reason) == ("failed", "Error")
    # The limit is shared in a pod of many containers (12 KiB in all): 5 containers keep 2457 bytes each.
    crowded = pod("Succeeded", main={"terminated": {"exitCode": 0, "message": cut[:2457]}})
    crowded["spec"].update(initContainers=[{"name": f"i{n}"} for n in range(4)], containers=[{"name": "main"}])
    assert interpret_pod(crowded, "main").reason == "OutputsTooLarge"
    assert interpret_pod(
        pod("Succeeded", main={"terminated": {"exitCode": 0, "message": cut[:2457]}}), "main"
    ).status == ("succeeded")


def test_job_conditions() -> None:
    failed = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                }
            ]
        }
    }
    verdict = interpret_job(failed)
    assert verdict is not None and (verdict.status, verdict.reason) == ("failed", "DeadlineExceeded")
    assert interpret_job({"status": {"active": 1}}) is None


# -- logs -----------------------------------------------------------------------------------------------


def test_log_timestamps_and_resume() -> None:
    assert split_timestamp(b"2024-05-01T10:00:00.5Z hello world") == ("2024-05-01T10:00:00.5Z", "hello world")
    assert split_timestamp("no stamp") == ("", "no stamp")
    assert ts_key("2024-05-01T10:00:00.5Z") > ts_key("2024-05-01T10:00:00.123Z")
    resume = Resume()
    first = [("2024-05-01T10:00:00.1Z", "a"), ("2024-05-01T10:00:00.2Z", "b"), ("2024-05-01T10:00:00.2Z", "b")]
    assert [resume.accept(ts, t) for ts, t in first] == [True, True, True]
    assert resume.reopen() == "2024-05-01T10:00:00.2Z"
    replay = [
        ("2024-05-01T10:00:00.2Z", "b"),
        ("2024-05-01T10:00:00.2Z", "b"),
        ("2024-05-01T10:00:00.2Z", "c"),
        ("2024-05-01T10:00:01Z", "d"),
    ]
    assert [resume.accept(ts, t) for ts, t in replay] == [False, False, True, True]


# -- port-forward ---------------------------------------------------------------------------------------


def test_port_forward_pumps_bytes_both_ways() -> None:
    """The forwarding, with a plain socket as the tunnel (the WebSocket tunnel is the official client's)."""
    upstream = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _ = upstream.accept()
        with conn:
            data = conn.recv(1024)
            conn.sendall(b"echo:" + data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    forward = PortForward(lambda: socket.create_connection(upstream.getsockname()))
    try:
        assert forward.url == f"http://127.0.0.1:{forward.port}/"
        with socket.create_connection(("127.0.0.1", forward.port)) as client:
            client.sendall(b"ping")
            assert client.recv(1024) == b"echo:ping"
    finally:
        forward.close()
        upstream.close()
        thread.join(timeout=5)


def test_placement_is_json_round_trippable() -> None:
    compiled = op(kind="service", ports=1)
    assert CompiledOp.from_dict(json.loads(json.dumps(compiled.to_dict()))) == compiled
    assert isinstance(compiled.placement, Placement)


def test_a_container_that_never_started_has_no_start_time() -> None:
    # containerd reports a container it could not start (exec: "python3": executable file not found) as
    # terminated, exit 128, StartError, startedAt at the zero time: the run failed without ever running.
    never = {"exitCode": 128, "reason": "StartError", "startedAt": "1970-01-01T00:00:00Z"}
    observed = interpret_pod(pod("Failed", main={"terminated": never}), "main")
    assert observed.status == "failed" and observed.started_at is None
    ran = {"exitCode": 1, "reason": "Error", "startedAt": "2026-12-06T10:00:00Z"}
    assert interpret_pod(pod("Failed", main={"terminated": ran}), "main").started_at is not None


def test_a_container_restarted_under_on_failure_tells_its_last_failure() -> None:
    crashed = {"terminated": {"exitCode": 2, "reason": "Error", "message": "boom\n"}}
    looping = pod("Running", main={"waiting": {"reason": "CrashLoopBackOff"}})
    looping["status"]["containerStatuses"][0].update(restartCount=1, lastState=crashed)
    observed = interpret_restarted(looping, "main")
    assert observed is not None
    assert (observed.status, observed.reason) == ("failed", "Error")
    assert "exited with code 2" in observed.message and "boom" in observed.message
    assert interpret_restarted(pod("Running", main={"running": {}}), "main") is None  # never restarted
