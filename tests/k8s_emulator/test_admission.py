"""PodSecurity ``restricted`` and a pods ResourceQuota, through the official client: a pod create refused with
the API server's 403, a Job's pods refused as ``FailedCreate`` events on the Job (see ``admission``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from k8s_emulator import Emulator, script_annotation
from k8s_emulator.testkit import wait_for

NS = "default"


@pytest.fixture
def core(emulator: Emulator, kubeconfig: Path) -> Iterator[Any]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        yield client.CoreV1Api(api_client), client.BatchV1Api(api_client)


def pod(name: str, **security: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36"}
    if security:
        container["securityContext"] = security
    return {"metadata": {"name": name, "annotations": script_annotation({"main": {"hold": True}})},
            "spec": {"containers": [container], "restartPolicy": "Never"}}  # fmt: skip


RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_a_restricted_namespace_refuses_a_pod_that_does_not_meet_the_level(emulator: Emulator, core: Any) -> None:
    v1, _ = core
    emulator.enforce_pod_security("restricted")
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_pod(NS, pod("plain"))
    assert exc.value.status == 403
    status = json.loads(str(exc.value.body))
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'pods "plain" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
        ' (container "main" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities'
        ' (container "main" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or'
        ' container "main" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "main"'
        ' must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    v1.create_namespaced_pod(NS, pod("hardened", **RESTRICTED))  # meets the level: admitted


def test_a_pods_quota_refuses_the_pod_over_it_and_the_job_controller_says_so(emulator: Emulator, core: Any) -> None:
    v1, batch = core
    emulator.pod_quota(1, name="team")
    v1.create_namespaced_pod(NS, pod("first"))
    with pytest.raises(ApiException) as exc:
        v1.create_namespaced_pod(NS, pod("second"))
    assert json.loads(str(exc.value.body))["message"] == (
        'pods "second" is forbidden: exceeded quota: team, requested: pods=1, used: pods=1, limited: pods=1'
    )
    job = {
        "metadata": {"name": "blocked"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "busybox:1.36"}]}}},
    }  # fmt: skip
    batch.create_namespaced_job(NS, job)
    events = wait_for(
        lambda: [e for e in emulator.objects("events") if e["reason"] == "FailedCreate"], emulator, what="FailedCreate"
    )
    assert events[0]["involvedObject"]["name"] == "blocked" and events[0]["type"] == "Warning"
    assert events[0]["message"].startswith('Error creating: pods "blocked-')
    assert "exceeded quota: team, requested: pods=1, used: pods=1, limited: pods=1" in events[0]["message"]
