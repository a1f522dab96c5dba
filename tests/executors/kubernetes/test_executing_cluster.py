"""The kubernetes executor on the executing emulator: its Jobs' containers really run, from catalogue images
that contain no polynb, so what a cluster would make of an op is what the test sees."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import MakeExecutor, ManualClock, eventually, kubectl, make_op
from support.recorder import UpdateRecorder

from polynb.compiler.types import CompiledOp, ContainerSpec, InitStep
from polynb.executors.kubernetes.executor import KubernetesExecutor

executing_emulator = testkit.executing_emulator
kubeconfig = testkit.executing_kubeconfig
make_executor = testkit.make_executor
executor = testkit.executor


def test_a_job_op_runs_and_reports_outputs_through_the_termination_message(
    executor: KubernetesExecutor,
) -> None:
    code = (
        "import json, os; print('training')\n"
        "open(os.environ['POLYNB_TERMINATION_LOG'], 'w').write(json.dumps({'loss': 0.5}))"
    )
    rec = UpdateRecorder()
    op = make_op(executor, image="python:3.11", command=("python3", "-c", code))
    executor.submit(op, rec)
    final = rec.final()
    assert (final.status, final.outputs) == ("succeeded", {"loss": 0.5})
    assert "training" in "".join(executor.logs(op.uuid))


def test_an_init_container_shares_the_artifacts_volume_with_the_main_container(
    executing_emulator: Emulator, executor: KubernetesExecutor, tmp_path: Path
) -> None:
    prepare = InitStep(
        kind="container",
        container=ContainerSpec(
            name="prepare", image="busybox:1.36", command=("sh", "-c", "echo prepared > /plx-context/artifacts/ready")
        ),
    )
    rec = UpdateRecorder()
    op = make_op(
        executor,
        image="python:3.11-slim",
        command=("python3", "-c", "print(open('/plx-context/artifacts/ready').read())"),
        init=(prepare,),
    )
    executor.submit(op, rec)
    assert rec.final().status == "succeeded"
    assert "prepared" in "".join(executor.logs(op.uuid))


def test_an_op_needing_what_its_image_lacks_fails_on_a_stock_image(executor: KubernetesExecutor) -> None:
    # polynb's programs come into the pod in the runtime bundle, but not the packages they need: the example
    # training needs NumPy, which python:3.11 does not have (tensorflow/tensorflow:2.15.0 does).
    rec = UpdateRecorder()
    op = make_op(executor, image="python:3.11", command=("python", "-m", "polynb.examples.train"))
    executor.submit(op, rec)
    final = rec.final()
    assert final.status == "failed"
    assert "No module named 'numpy'" in (final.message or "") + "".join(executor.logs(op.uuid))
    # Nor is the rest of polynb there: only what runs in ops is shipped.
    rec = UpdateRecorder()
    op = make_op(executor, image="python:3.11", command=("python", "-c", "import polynb.notebook"))
    executor.submit(op, rec)
    final = rec.final()
    assert final.status == "failed"
    assert "No module named 'polynb.notebook'" in (final.message or "") + "".join(executor.logs(op.uuid))


STOPPABLE = (
    "import signal, sys, time\n"
    "def bye(*_):\n"
    "    print('saving a checkpoint', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('training', flush=True)\n"
    "time.sleep(300)"
)


def training(executor: KubernetesExecutor) -> tuple[CompiledOp, UpdateRecorder]:
    """A job op running STOPPABLE, once it has printed its first line: the op and its updates."""
    rec = UpdateRecorder()
    op = make_op(executor, image="python:3.11-slim", command=("python3", "-c", STOPPABLE))
    executor.submit(op, rec)
    rec.until("running")
    eventually(lambda: "training" in list(executor.logs(op.uuid)), what="the op's first line")
    return op, rec


def test_a_stopped_job_keeps_its_logs_those_of_its_grace_period_too(
    executing_emulator: Emulator, executor: KubernetesExecutor, home: Path
) -> None:
    # `polynb stop` (or termination.timeout) deletes the pod, and with it its logs: they are kept first,
    # including what the op prints between the SIGTERM and its exit.
    op, rec = training(executor)
    executor.stop(op.uuid, grace=30)
    assert rec.final().status == "stopped"
    eventually(lambda: not executing_emulator.objects("pods", selector=f"polynb.io/run={op.uuid}"), what="pod gone")
    assert list(executor.logs(op.uuid)) == ["training", "saving a checkpoint"]
    assert sorted(p.name for p in (home / "artifacts" / op.uuid / "logs").iterdir()) == ["00-main.log"]


def test_a_pod_deleted_outside_polynb_stops_its_run_and_is_not_run_again(
    executing_emulator: Emulator, executor: KubernetesExecutor
) -> None:
    # `kubectl delete pod`: the Job (backoffLimit 0) counts the pod as failed and makes no other; the run is
    # not reported as a failure of its own (BackoffLimitExceeded) but as deleted outside polynb.
    op, rec = training(executor)
    (pod,) = executing_emulator.objects("pods", selector=f"polynb.io/run={op.uuid}")
    executing_emulator.store.delete("pods", "default", pod["metadata"]["name"], {})
    final = rec.final()
    assert (final.status, final.reason) == ("stopped", "Deleted")
    assert pod["metadata"]["name"] in (final.message or "")
    eventually(lambda: not executing_emulator.objects("jobs", selector=f"polynb.io/run={op.uuid}"), what="Job gone")
    assert executing_emulator.objects("pods", selector=f"polynb.io/run={op.uuid}") == []
    assert list(executor.logs(op.uuid)) == ["training", "saving a checkpoint"]  # read while it was deleted


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
def test_a_pod_evicted_by_a_node_drain_fails_its_run_with_the_eviction_and_keeps_its_logs(
    executing_emulator: Emulator, executor: KubernetesExecutor
) -> None:
    # `kubectl drain` (a node upgrade, an autoscaler's scale-down) evicts the pod: a disruption, not the user's
    # deletion. The run fails with the eviction as its reason, so its maxRetries run it again elsewhere (a
    # pod deleted by hand is `stopped` and not retried); what it printed in its grace period is kept.
    op, rec = training(executor)
    (pod,) = executing_emulator.objects("pods", selector=f"polynb.io/run={op.uuid}")
    node = pod["spec"]["nodeName"]
    assert executing_emulator.kubeconfig is not None
    out = kubectl(executing_emulator.kubeconfig, "drain", node, "--delete-emptydir-data", "--timeout=60s")
    assert f"pod/{pod['metadata']['name']} evicted" in out
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "EvictionByEvictionAPI")
    assert pod["metadata"]["name"] in (final.message or "") and node in (final.message or "")
    assert list(executor.logs(op.uuid)) == ["training", "saving a checkpoint"]


def test_a_failed_init_entry_says_why_in_the_runs_message(executor: KubernetesExecutor) -> None:
    # A failed init container's log tail is its termination message (FallbackToLogsOnError), as the main
    # container's: the failure names its cause (a clone that cannot reach its host, a missing file), not
    # only an exit code.
    fetch = InitStep(
        kind="container",
        container=ContainerSpec(
            name="fetch",
            image="busybox:1.36",
            command=("sh", "-c", "echo 'cannot resolve host data.example' >&2; exit 3"),
        ),
    )
    rec = UpdateRecorder()
    op = make_op(executor, image="python:3.11-slim", command=("python3", "-c", "print('never')"), init=(fetch,))
    executor.submit(op, rec)
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "InitFailed")
    assert "exited with code 3" in (final.message or "")
    assert "cannot resolve host data.example" in (final.message or "")


def test_a_pod_no_node_can_hold_is_unschedulable_with_the_schedulers_message(
    executing_emulator: Emulator, executor: KubernetesExecutor
) -> None:
    # resources.limits a node cannot give (no GPU; more memory than it has): the scheduler leaves the pod
    # Pending with PodScheduled=False/Unschedulable, and the run says so until it is stopped.
    rec = UpdateRecorder()
    resources = {"limits": {"nvidia.com/gpu": 1, "memory": "64Gi"}}
    op = make_op(executor, image="python:3.11-slim", command=("python3", "-c", "print('never')"),
                 k8s={"resources": resources})  # fmt: skip
    executor.submit(op, rec)
    update = rec.until("unschedulable")
    assert "Insufficient memory" in update.message and "Insufficient nvidia.com/gpu" in update.message
    executor.stop(op.uuid)
    assert rec.final().status == "stopped"
    assert "running" not in rec.statuses


CRASH = "import sys; print('boom: no such dataset', file=sys.stderr); sys.exit(2)"


@pytest.mark.parametrize("keep", [False, True])
def test_a_job_crashing_under_on_failure_fails_with_its_log_and_is_not_restarted_for_ever(
    executing_emulator: Emulator, make_executor: MakeExecutor, keep: bool
) -> None:
    # restartPolicy OnFailure: the kubelet restarts the container in place, and with backoffLimit 0 the Job
    # fails at the first restart (BackoffLimitExceeded) and deletes its pod. The run fails with the
    # container's own exit and log, whichever of the pod's states the watch saw, and its log is kept.
    executor = make_executor(keep_finished=keep)
    rec = UpdateRecorder()
    op = make_op(executor, image="python:3.11-slim", command=("python3", "-c", CRASH),
                 environment={"restartPolicy": "OnFailure"})  # fmt: skip
    executor.submit(op, rec)
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "Error")
    assert "exited with code 2" in (final.message or "") and "boom: no such dataset" in (final.message or "")
    selector = f"polynb.io/run={op.uuid}"
    eventually(lambda: not executing_emulator.objects("pods", selector=selector), what="no pod restarting")
    if not keep:  # archived before its objects are deleted (a kept run's log is the pod's, which the Job deleted)
        assert "boom: no such dataset" in list(executor.logs(op.uuid))


def test_a_pod_stuck_mounting_a_missing_secret_warns_with_the_kubelets_event(
    executing_emulator: Emulator, make_executor: MakeExecutor
) -> None:
    # The kubelet retries the mount for ever (the Secret may come later): the run is not failed, but it must
    # not sit in `starting` without a word: after pod_start_timeout it warns with the pod's FailedMount event.
    clock = ManualClock()
    executor = make_executor(clock=clock, pod_start_timeout=60)
    rec = UpdateRecorder()
    op = make_op(executor, image="python:3.11-slim", command=("ls", "/creds"),
                 k8s={"volumeMounts": [{"name": "creds", "mountPath": "/creds"}]})  # fmt: skip
    op = dataclasses.replace(op, volumes=({"name": "creds", "secret": {"secretName": "team-creds"}},))
    executor.submit(op, rec)
    rec.until("starting")
    eventually(lambda: any(e["reason"] == "FailedMount" for e in executing_emulator.objects("events")),
               what="the FailedMount event")  # fmt: skip
    executor._check_stuck()
    clock.advance(61)
    executor._check_stuck()
    warning = rec.until("warning", reason="FailedMount")
    assert 'secret "team-creds" not found' in warning.message
    executor.stop(op.uuid)
    assert rec.final().status == "stopped"
