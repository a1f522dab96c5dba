"""What the kubernetes executor leaves behind: a finished run's logs are archived under ``$POLYNB_HOME`` and
its objects deleted (unless ``termination.ttl`` or ``keep_finished``), and the objects of released or
crashed kernels are swept once their lease is over."""

from __future__ import annotations

import time
from pathlib import Path

from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import MakeExecutor, ManualClock, make_op, outputs_message, wait_for
from support.recorder import UpdateRecorder

from polynb.compiler.types import InitStep
from polynb.executors.kubernetes import kernel as k8s_kernel
from polynb.executors.kubernetes import names
from polynb.executors.kubernetes.executor import KubernetesExecutor

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
make_executor = testkit.make_executor
executor = testkit.executor


def gone(emulator: Emulator, run_uuid: str) -> bool:
    selector = f"polynb.io/run={run_uuid}"
    return not any(emulator.objects(plural, selector=selector) for plural in ("jobs", "pods", "services"))


def test_a_finished_job_is_archived_then_deleted(emulator: Emulator, executor: KubernetesExecutor, home: Path) -> None:
    rec = UpdateRecorder()
    op = make_op(
        executor,
        init=(InitStep(kind="file", spec={"filename": "cfg.json", "content": "{}"}),),
        script={"init-0-file": {"logs": ["wrote cfg.json"]}, "main": {"logs": ["epoch 1", "epoch 2"]}},
    )
    executor.submit(op, rec)
    assert rec.final().status == "succeeded"
    wait_for(lambda: gone(emulator, op.uuid), emulator, what="the Job and its pod deleted")
    folder = home / "artifacts" / op.uuid / "logs"
    assert sorted(p.name for p in folder.iterdir()) == ["00-init-0-file.log", "01-main.log"]
    assert list(executor.logs(op.uuid)) == ["wrote cfg.json", "epoch 1", "epoch 2"]


def test_polynb_logs_works_from_another_process_after_the_deletion(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    first = make_executor(kernel_id="first")
    rec = UpdateRecorder()
    op = make_op(first, script={"main": {"logs": ["hello"], "message": outputs_message(loss=0.1)}})
    first.submit(op, rec)
    assert rec.final().outputs == {"loss": 0.1}
    wait_for(lambda: gone(emulator, op.uuid), emulator, what="the run's objects deleted")
    other = make_executor(kernel_id="other")  # `polynb logs RUN` later: it never knew the run
    assert list(other.logs(op.uuid)) == ["hello"]


def test_ttl_keeps_the_objects_until_the_scheduler_cleans_up(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, ttl=600, script={"main": {"logs": ["kept"]}})
    executor.submit(op, rec)
    assert rec.final().status == "succeeded"
    emulator.settle()
    assert emulator.objects("jobs", selector=f"polynb.io/run={op.uuid}")  # kept for its ttl
    assert list(executor.logs(op.uuid)) == ["kept"]  # from the pod, still there
    executor.cleanup(op.uuid)  # the scheduler's call once the ttl is over
    wait_for(lambda: gone(emulator, op.uuid), emulator, what="the Job deleted after its ttl")


def test_keep_finished_keeps_every_run(emulator: Emulator, make_executor: MakeExecutor) -> None:
    executor = make_executor(keep_finished=True)
    rec = UpdateRecorder()
    op = make_op(executor)
    executor.submit(op, rec)
    assert rec.final().status == "succeeded"
    emulator.settle()
    assert len(emulator.objects("jobs", selector=f"polynb.io/run={op.uuid}")) == 1
    assert len(emulator.objects("pods", selector=f"polynb.io/run={op.uuid}")) == 1


def test_a_stopped_service_leaves_neither_pod_nor_service(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, kind="service", ports=1, script={"main": {"hold": True, "logs": ["serving"]}})
    executor.submit(op, rec)
    rec.until("running")
    executor.stop(op.uuid)
    assert rec.final().status == "stopped"
    wait_for(lambda: gone(emulator, op.uuid), emulator, what="the Pod and the Service deleted")


def test_a_failed_job_is_deleted_too(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, script={"main": {"exit": 2, "logs": ["boom"]}})
    executor.submit(op, rec)
    assert rec.final().status == "failed"
    wait_for(lambda: gone(emulator, op.uuid), emulator, what="the failed Job deleted")
    assert list(executor.logs(op.uuid)) == ["boom"]


def released_kernel(make_executor: MakeExecutor, kernel: str, *, hold: bool) -> str:
    ex = make_executor(kernel_id=kernel, lease_seconds=60)
    rec = UpdateRecorder()
    op = make_op(ex, script={"main": {"hold": True}} if hold else None, ttl=3600)  # ttl: left there on purpose
    ex.submit(op, rec)
    rec.until("running") if hold else rec.final()
    ex.shutdown(stop_running=False)  # `polynb run` leaving its services: kernel released
    return op.uuid


def test_released_kernels_are_swept_once_their_lease_is_over_and_nothing_runs(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    finished = released_kernel(make_executor, "done", hold=False)
    serving = released_kernel(make_executor, "serving", hold=True)
    sweeper = make_executor(kernel_id="new", lease_seconds=60)
    assert k8s_kernel.sweep(sweeper.api, "default", now=time.time() + 30, exclude="new") == []  # lease not over
    assert k8s_kernel.sweep(sweeper.api, "default", now=time.time() + 61, exclude="new") == ["done"]
    emulator.settle()
    assert gone(emulator, finished)
    assert emulator.objects("configmaps", selector=f"{names.KERNEL}=done") == []
    # A released kernel's live run waits for a kernel to re-attach it: kept with its ConfigMap.
    assert emulator.objects("jobs", selector=f"polynb.io/run={serving}")
    assert emulator.objects("configmaps", selector=f"{names.KERNEL}=serving")


def test_a_long_lived_executor_sweeps_every_lease(emulator: Emulator, make_executor: MakeExecutor) -> None:
    clock = ManualClock()
    live = make_executor(kernel_id="live", lease_seconds=60, heartbeat_interval=30, clock=clock)
    rec = UpdateRecorder()
    live.submit(make_op(live), rec)  # started: the start-up sweep found nothing
    assert rec.final().status == "succeeded"
    finished = released_kernel(make_executor, "done", hold=False)
    emulator.store.patch(  # its last heartbeat was long ago
        "configmaps",
        "default",
        names.kernel_configmap_name("done"),
        "application/merge-patch+json",
        {"metadata": {"annotations": {names.HEARTBEAT_ANNOTATION: "2020-01-01T00:00:00Z"}}},
    )
    live._check_stuck()  # a heartbeat tick before a lease went by: no sweep
    assert not gone(emulator, finished)
    clock.advance(61)
    live._check_stuck()
    wait_for(lambda: gone(emulator, finished), emulator, what="the released kernel's runs swept")
    assert emulator.objects("configmaps", selector=f"{names.KERNEL}=done") == []


def test_a_retried_runs_archive_keeps_every_attempts_log(emulator: Emulator, executor: KubernetesExecutor) -> None:
    # The scheduler submits the same run again for each retry (maxRetries); each attempt's Job is archived then
    # deleted: the archive adds to the earlier attempts' logs (as the local executor's log does), never replaces
    # them, or the failures that were retried would leave no trace.
    op = make_op(executor, script={"main": {"logs": ["loading", "diverged"], "exit": 1}})
    for _ in range(2):
        rec = UpdateRecorder()
        executor.submit(op, rec)
        assert rec.final().status == "failed"
        wait_for(lambda: gone(emulator, op.uuid), emulator, what="the attempt's Job deleted")
    assert list(executor.logs(op.uuid)) == ["loading", "diverged", "loading", "diverged"]
