"""The emulator against the official client: the protocol behaviours the executor relies on.

Each behaviour follows the upstream apiserver (file named in the test's docstring where it matters), so a
test here failing means the emulator drifted, not polynb.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from k8s_emulator import Emulator, script_annotation
from k8s_emulator.testkit import wait_for

NS = "default"


@pytest.fixture
def api(emulator: Emulator, kubeconfig: Path) -> Iterator[client.ApiClient]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        yield api_client


# The client's generated hints take model objects (V1Pod, ...) and make every field of a reply optional; these
# tests post raw JSON dicts (the client sends them as they are), read fields the server must have filled, and
# ask for undecoded responses (``_preload_content=False``). So the APIs are used untyped, as in polynb's client.
def core(api: client.ApiClient) -> Any:
    return client.CoreV1Api(api)


def batch(api: client.ApiClient) -> Any:
    return client.BatchV1Api(api)


def pod_body(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    script: dict[str, Any] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    **pod: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {"app": "t"}}
    if script is not None or pod:
        meta["annotations"] = script_annotation(script or {}, **pod)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": containers or [{"name": "main", "image": "busybox:1.36"}],
    }
    if init:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def job_body(name: str, *, backoff: int = 0, script: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    template = pod_body("x", script=script)
    template["metadata"].pop("name")
    del template["apiVersion"], template["kind"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app": "t"}},
        "spec": {"backoffLimit": backoff, "template": template, **spec},
    }


def error(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    assert exc.value.body is not None, exc.value
    body: dict[str, Any] = json.loads(exc.value.body)
    return body


# -- discovery, create, validation, errors ------------------------------------------------------------


def test_discovery_and_version(api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version.startswith("v1.32")
    groups = client.ApisApi(api).get_api_versions()
    assert "batch" in [g.name for g in groups.groups]
    resources = {r.name for r in batch(api).get_api_resources().resources}
    assert {"jobs", "jobs/status"} <= resources


def test_create_defaults_then_409_on_the_same_name(api: client.ApiClient) -> None:
    pod = core(api).create_namespaced_pod(NS, pod_body("p1"))
    assert pod.metadata.uid and int(pod.metadata.resource_version) > 0 and pod.metadata.creation_timestamp
    assert pod.spec.containers[0].termination_message_path == "/dev/termination-log"
    assert pod.spec.containers[0].image_pull_policy == "IfNotPresent"  # tagged image
    with pytest.raises(ApiException) as exc:
        core(api).create_namespaced_pod(NS, pod_body("p1"))
    assert exc.value.status == 409
    assert error(exc)["reason"] == "AlreadyExists"
    assert error(exc)["message"] == 'pods "p1" already exists'


def test_validation_is_a_422_with_causes(api: client.ApiClient) -> None:
    """pkg/apis/core/validation: names are RFC 1123, images required; defaulting runs before validation."""
    with pytest.raises(ApiException) as exc:
        core(api).create_namespaced_pod(NS, pod_body("Bad_Name", containers=[{"name": "main", "image": ""}]))
    body = error(exc)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    fields = [c["field"] for c in body["details"]["causes"]]
    assert fields == ["metadata.name", "spec.containers[0].image"]
    assert "RFC 1123 subdomain" in body["message"]
    job = job_body("j-bad")
    del job["spec"]["template"]["spec"]["restartPolicy"]
    with pytest.raises(ApiException) as exc:
        batch(api).create_namespaced_job(NS, job)
    assert 'Unsupported value: "Always"' in error(exc)["message"]  # defaulted to Always, then refused


def test_missing_namespace_is_a_404_naming_it(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as exc:
        core(api).create_namespaced_pod("nope", pod_body("p"))
    assert exc.value.status == 404
    assert error(exc)["message"] == 'namespaces "nope" not found'


def test_selectors(api: client.ApiClient) -> None:
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        core(api).create_namespaced_pod(NS, pod_body(name, labels={"tier": tier, "app": "t"}))
    names = lambda **kw: [p.metadata.name for p in core(api).list_namespaced_pod(NS, **kw).items]  # noqa: E731
    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier in (db),app") == ["b"]
    assert names(label_selector="tier!=web") == ["b"]
    assert names(field_selector="metadata.name=c") == ["c"]
    with pytest.raises(ApiException) as exc:
        names(field_selector="spec.image=x")
    assert exc.value.status == 400 and "field label not supported" in error(exc)["message"]


def test_injected_faults(emulator: Emulator, api: client.ApiClient, tmp_path: Path) -> None:
    emulator.fail(503, times=2, verb="list", resource="pods")
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            core(api).list_namespaced_pod(NS)
        assert exc.value.status == 503
    assert core(api).list_namespaced_pod(NS).items == []
    emulator.deny("create", "jobs")
    with pytest.raises(ApiException) as exc:
        batch(api).create_namespaced_job(NS, job_body("j"))
    assert exc.value.status == 403
    assert error(exc)["message"] == (
        'jobs is forbidden: User "system:serviceaccount:default:polynb" cannot create resource "jobs" in API group '
        '"batch" in the namespace "default"'
    )
    emulator.faults.token = "s3cret"
    with pytest.raises(ApiException) as exc:
        core(api).list_namespaced_pod(NS)
    assert exc.value.status == 401


# -- watch ---------------------------------------------------------------------------------------------


def test_watch_replays_from_a_resource_version_with_selector_transitions(api: client.ApiClient) -> None:
    """staging/src/k8s.io/apiserver/pkg/storage/cacher: an object leaving the selector is DELETED."""
    start = core(api).list_namespaced_config_map(NS).metadata.resource_version
    core(api).create_namespaced_config_map(NS, {"metadata": {"name": "w1", "labels": {"app": "t"}}})
    core(api).patch_namespaced_config_map("w1", NS, {"data": {"k": "v"}})
    core(api).patch_namespaced_config_map("w1", NS, {"metadata": {"labels": {"app": "other"}}})
    core(api).patch_namespaced_config_map("w1", NS, {"metadata": {"labels": {"app": "t"}}})
    core(api).delete_namespaced_config_map("w1", NS)
    events = [
        e["type"]
        for e in watch.Watch().stream(
            core(api).list_namespaced_config_map, NS, label_selector="app=t", resource_version=start, timeout_seconds=1
        )
    ]
    assert events == ["ADDED", "MODIFIED", "DELETED", "ADDED", "DELETED"]


def test_compaction_gives_410_and_bookmarks_are_raw(emulator: Emulator, api: client.ApiClient) -> None:
    old = core(api).list_namespaced_pod(NS).metadata.resource_version
    core(api).create_namespaced_pod(NS, pod_body("c1"))
    emulator.compact()
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core(api).list_namespaced_pod, NS, resource_version=old, timeout_seconds=1))
    assert exc.value.status == 410
    # Bookmarks: on demand (deterministic), as raw dicts (the client does not build models of them).
    resp = core(api).list_namespaced_pod(
        NS,
        watch=True,
        allow_watch_bookmarks=True,
        resource_version=core(api).list_namespaced_pod(NS).metadata.resource_version,
        timeout_seconds=5,
        _preload_content=False,
    )
    emulator.send_bookmarks()
    line = next(iter(resp.stream(1024))).decode()
    resp.close()
    event = json.loads(line)
    assert event["type"] == "BOOKMARK" and int(event["object"]["metadata"]["resourceVersion"]) >= int(old)


def test_drop_watches_breaks_the_stream(emulator: Emulator, api: client.ApiClient) -> None:
    rv = core(api).list_namespaced_pod(NS).metadata.resource_version
    resp = core(api).list_namespaced_pod(NS, watch=True, resource_version=rv, _preload_content=False)
    wait_for(lambda: emulator.open_watches == 1, emulator, what="watch open")
    emulator.drop_watches()
    with pytest.raises(Exception):  # noqa: B017, PT011 - urllib3's ProtocolError: the chunked body was cut
        b"".join(resp.stream(1024))
    assert emulator.open_watches == 0 or wait_for(lambda: emulator.open_watches == 0, emulator)


# -- the control plane ---------------------------------------------------------------------------------


def test_kubelet_runs_init_then_native_sidecar_then_main(emulator: Emulator, api: client.ApiClient) -> None:
    body = pod_body(
        "k1",
        script={"init": {"logs": ["fetched"]}, "main": {"logs": ["epoch 1"], "message": '{"loss": 0.5}'}},
        init=[
            {"name": "init", "image": "busybox:1.36"},
            {"name": "proxy", "image": "busybox:1.36", "restartPolicy": "Always"},
        ],
    )
    rv = core(api).list_namespaced_pod(NS).metadata.resource_version
    core(api).create_namespaced_pod(NS, body)
    phases: list[tuple[str, ...]] = []  # the pod's phase, then each container's state
    for event in watch.Watch().stream(core(api).list_namespaced_pod, NS, resource_version=rv, timeout_seconds=2):
        pod = event["object"]
        states = [
            next(k for k in ("running", "terminated", "waiting") if getattr(s.state, k))
            for s in (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
        ]
        phases.append((pod.status.phase, *states))
        if pod.status.phase == "Succeeded":
            break
    assert phases[-1] == ("Succeeded", "terminated", "terminated", "terminated")
    assert ("Pending", "running", "waiting", "waiting") in phases  # init runs first
    assert ("Running", "terminated", "running", "running") in phases  # sidecar beside main
    final = core(api).read_namespaced_pod("k1", NS)
    assert final.status.container_statuses[0].state.terminated.message == '{"loss": 0.5}'
    assert core(api).read_namespaced_pod_log("k1", NS, container="init") == "fetched\n"


def test_waiting_reasons_and_oom(emulator: Emulator, api: client.ApiClient) -> None:
    core(api).create_namespaced_pod(NS, pod_body("img", script={"main": {"image_pull": "backoff"}}))
    core(api).create_namespaced_pod(NS, pod_body("oom", script={"main": {"oom": True}}))
    core(api).create_namespaced_pod(NS, pod_body("gpu", unschedulable="0/1 nodes are available: 1 Insufficient gpu."))
    emulator.settle()
    waiting = core(api).read_namespaced_pod("img", NS).status.container_statuses[0].state.waiting
    assert waiting.reason == "ImagePullBackOff"
    term = core(api).read_namespaced_pod("oom", NS).status.container_statuses[0].state.terminated
    assert (term.reason, term.exit_code) == ("OOMKilled", 137)
    cond = core(api).read_namespaced_pod("gpu", NS).status.conditions[0]
    assert (cond.type, cond.status, cond.reason) == ("PodScheduled", "False", "Unschedulable")
    events = core(api).list_namespaced_event(NS, field_selector="involvedObject.name=gpu").items
    assert [e.reason for e in events] == ["FailedScheduling"]
    emulator.schedule("gpu")
    emulator.settle()
    assert core(api).read_namespaced_pod("gpu", NS).status.phase == "Succeeded"


def test_logs_wait_follow_since_and_the_400s(emulator: Emulator, api: client.ApiClient) -> None:
    core(api).create_namespaced_pod(
        NS, pod_body("l1", script={"main": {"hold": True, "logs": ["a", "b"]}}, unschedulable="wait")
    )
    emulator.settle()
    with pytest.raises(ApiException) as exc:
        core(api).read_namespaced_pod_log("l1", NS)
    assert 'container "main" in pod "l1" is waiting to start' in error(exc)["message"]
    emulator.schedule("l1")
    emulator.settle()
    stamped = core(api).read_namespaced_pod_log("l1", NS, timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["a", "b"]
    second = stamped[1].split(" ", 1)[0]
    # The generated client has no sinceTime (only sinceSeconds): ask over plain HTTP.
    since = urllib.request.urlopen(f"{emulator.url}/api/v1/namespaces/{NS}/pods/l1/log?sinceTime={second}")
    assert since.read() == b"b\n"
    resp = core(api).read_namespaced_pod_log("l1", NS, follow=True, _preload_content=False)
    emulator.log("l1", "main", "c")
    emulator.finish("l1", "main")
    assert resp.data.decode() == "a\nb\nc\n"  # the stream ends when the container terminates


def test_job_controller_backoff_and_deletion_propagation(emulator: Emulator, api: client.ApiClient) -> None:
    """pkg/registry/batch/job/storage/storage.go: deleting a Job orphans its pods unless told otherwise."""
    batch(api).create_namespaced_job(NS, job_body("fails", script={"main": {"exit": 3}}))
    batch(api).create_namespaced_job(NS, job_body("ok"))
    emulator.settle()
    failed = batch(api).read_namespaced_job("fails", NS)
    assert [(c.type, c.reason) for c in failed.status.conditions] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert [c.type for c in batch(api).read_namespaced_job("ok", NS).status.conditions] == [
        "SuccessCriteriaMet",
        "Complete",
    ]
    pods = {p.metadata.labels["job-name"]: p for p in core(api).list_namespaced_pod(NS).items}
    assert pods["ok"].metadata.owner_references[0].kind == "Job"
    _, _, headers = batch(api).delete_namespaced_job_with_http_info("ok", NS)
    assert "child pods are preserved" in headers.get("Warning", "")
    batch(api).delete_namespaced_job("fails", NS, propagation_policy="Background")
    emulator.settle()
    left = [
        (p.metadata.labels["job-name"], p.metadata.owner_references) for p in core(api).list_namespaced_pod(NS).items
    ]
    assert left == [("ok", None)]  # orphaned and kept; the Background one is gone


def test_graceful_pod_deletion_and_clock(emulator: Emulator, api: client.ApiClient) -> None:
    core(api).create_namespaced_pod(NS, pod_body("g", script={"main": {"hold": True}}))
    emulator.settle()
    deleted = core(api).delete_namespaced_pod("g", NS)
    assert deleted.metadata.deletion_timestamp is not None  # terminating first
    emulator.settle()
    assert core(api).list_namespaced_pod(NS).items == []
    batch(api).create_namespaced_job(NS, job_body("slow", script={"main": {"hold": True}}, activeDeadlineSeconds=60))
    batch(api).create_namespaced_job(NS, job_body("short", ttlSecondsAfterFinished=30))
    emulator.settle()
    emulator.advance(61)
    emulator.settle()
    assert batch(api).read_namespaced_job("slow", NS).status.conditions[-1].reason == "DeadlineExceeded"
    assert [j.metadata.name for j in batch(api).list_namespaced_job(NS).items] == ["slow"]  # ttl removed "short"


def test_patches(api: client.ApiClient) -> None:
    core(api).create_namespaced_config_map(
        NS, {"metadata": {"name": "cm", "annotations": {"a": "1", "b": "2"}}, "data": {"k": "v"}}
    )
    merge = core(api).api_client
    core(api).patch_namespaced_config_map(
        "cm", NS, {"metadata": {"annotations": {"a": None, "c": "3"}}}, _content_type="application/merge-patch+json"
    )
    core(api).patch_namespaced_config_map("cm", NS, [{"op": "replace", "path": "/data/k", "value": "w"}])
    cm = core(api).read_namespaced_config_map("cm", NS)
    assert cm.metadata.annotations == {"b": "2", "c": "3"} and cm.data == {"k": "w"} and merge is not None
