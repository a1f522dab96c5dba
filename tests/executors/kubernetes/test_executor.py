"""The kubernetes executor against the emulator: lifecycle, statuses, services, stop, logs, idempotency,
re-attach and cleanup. Faults are in ``test_faults.py``."""

from __future__ import annotations

import time

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import MakeExecutor, make_op, outputs_message, wait_for
from support.recorder import UpdateRecorder

from polynb.compiler.types import ContainerSpec, InitStep
from polynb.executors.kubernetes import kernel as k8s_kernel
from polynb.executors.kubernetes import names
from polynb.executors.kubernetes.executor import K8sSubmitError, KubernetesExecutor
from polynb.executors.kubernetes.status import parse_time

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
make_executor = testkit.make_executor
executor = testkit.executor


def test_job_lifecycle_outputs_and_objects(emulator: Emulator, make_executor: MakeExecutor) -> None:
    # Finished runs kept, to look at their Job (by default a final run's objects are deleted once its logs are
    # archived, which can be before this test reads them).
    executor = make_executor(keep_finished=True)
    rec = UpdateRecorder()
    op = make_op(
        executor,
        name="Train Model!",
        dag_uuid="d" * 32,
        script={"main": {"logs": ["epoch 1"], "message": outputs_message(loss=0.25, acc=0.9)}},
    )
    handle = executor.submit(op, rec)
    final = rec.final()
    assert rec.statuses == ["scheduled", "starting", "running", "succeeded"]
    assert (final.reason, final.outputs) == ("Completed", {"loss": 0.25, "acc": 0.9})
    job = emulator.objects("jobs")[0]
    assert job["metadata"]["name"] == handle["name"] == f"train-model-{op.uuid[:8]}"
    labels = job["metadata"]["labels"]
    assert labels[names.MANAGED_BY] == "polynb" and labels[names.RUN] == op.uuid
    assert labels[names.KERNEL] == "kernel-1" and labels[names.DAG] == "d" * 32
    assert job["metadata"]["annotations"][names.NAME_ANNOTATION] == "Train Model!"
    assert job["spec"]["backoffLimit"] == 0
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    env = {e["name"]: e["value"] for e in pod_spec["containers"][0]["env"]}
    assert env["POLYAXON_RUN_UUID"] == op.uuid
    assert env["POLYAXON_RUN_OUTPUTS_PATH"] == f"/plx-context/artifacts/{op.uuid}/outputs"
    assert env["POLYAXON_RUN_ARTIFACTS_PATH"] == f"/plx-context/artifacts/{op.uuid}"
    executor.cleanup(op.uuid)
    emulator.settle()
    assert emulator.objects("jobs") == [] and emulator.objects("pods") == []  # Background: pods went too


def test_running_means_the_main_container_started(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    step = InitStep(kind="container", container=ContainerSpec(name="prepare", image="busybox:1.36"))
    op = make_op(executor, init=(step,), script={"init-0-container": {"hold": True}})
    executor.submit(op, rec)
    starting = rec.until("starting", reason="Initializing")
    assert starting.message == "running init containers"
    pod = wait_for(lambda: emulator.pod_of(op.uuid), emulator)
    emulator.settle()
    assert rec.empty() or rec.next().status == "starting"  # scheduled and initializing: not running
    emulator.finish(pod["metadata"]["name"], "init-0-container")
    rec.until("running")
    rec.until("succeeded")


@pytest.mark.parametrize(
    ("script", "reason", "text"),
    [
        ({"main": {"exit": 3, "logs": ["Traceback", "ValueError: bad lr"]}}, "Error", "exited with code 3"),
        ({"main": {"oom": True}}, "OOMKilled", "exited with code 137 (OOMKilled)"),
        ({"main": {"image_pull": "backoff"}}, "ImagePullBackOff", "Back-off pulling image"),
        ({"main": {"config_error": 'secret "creds" not found'}}, "CreateContainerConfigError", "creds"),
    ],
)
def test_failures_carry_the_container_reason(
    emulator: Emulator, make_executor: MakeExecutor, script: dict[str, dict[str, object]], reason: str, text: str
) -> None:
    executor = make_executor(image_pull_grace=0)  # the pull's grace: test_faults.py
    rec = UpdateRecorder()
    op = make_op(executor, script=script)
    executor.submit(op, rec)
    final = rec.final()
    assert (final.status, final.reason) == ("failed", reason)
    assert text in final.message
    if reason == "Error":
        assert "ValueError: bad lr" in final.message  # FallbackToLogsOnError: the log's tail
    if reason in ("ImagePullBackOff", "CreateContainerConfigError"):
        wait_for(lambda: not emulator.objects("jobs"), emulator, what="the stuck Job deleted")
        assert "running" not in rec.statuses


def test_init_failure(executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    step = InitStep(kind="container", container=ContainerSpec(name="fetch", image="busybox:1.36"))
    op = make_op(executor, init=(step,), script={"init-0-container": {"exit": 2}})
    executor.submit(op, rec)
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "InitFailed")
    assert "init container init-0-container exited with code 2" in final.message


def test_unschedulable_then_scheduled(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, pod_script={"unschedulable": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."})
    executor.submit(op, rec)
    update = rec.until("unschedulable")
    assert "Insufficient nvidia.com/gpu" in update.message
    emulator.schedule(emulator.require_pod_of(op.uuid)["metadata"]["name"])
    rec.until("running")
    rec.until("succeeded")


def test_stop_deletes_with_background_propagation(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, script={"main": {"hold": True}})
    executor.submit(op, rec)
    rec.until("running")
    emulator.reset_counts()
    executor.stop(op.uuid, grace=5)
    final = rec.final()
    assert (final.status, final.reason) == ("stopped", "Stopped")
    emulator.settle()
    assert emulator.objects("jobs") == [] and emulator.objects("pods") == []
    deletes = [r for r in emulator.requests if r.verb == "delete"]
    assert deletes[0].resource == "jobs" and deletes[0].query["propagationPolicy"] == "Background"


def test_stop_before_the_pod_exists(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor)
    emulator.fail_pod_creation(names.resource_name(op.name, op.uuid), "exceeded quota: pods")
    executor.submit(op, rec)
    executor.stop(op.uuid)
    assert rec.final().status == "stopped"


def test_service_gets_a_pod_a_service_and_a_url(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, name="tensorboard", kind="service", ports=1, script={"main": {"hold": True}})
    assert op.placement.ports == (6006,)
    assert op.placement.base_url == f"http://svc-{op.uuid[:12]}.default.svc:6006/"
    executor.submit(op, rec)
    rec.until("running", reason="ContainerStarted")
    ready = rec.until("running", reason="ServiceReady")
    assert ready.url == op.placement.base_url
    service = emulator.objects("services")[0]
    assert service["spec"]["selector"] == {names.RUN: op.uuid, names.ATTEMPT: "1"}
    assert service["spec"]["ports"][0]["port"] == 6006
    assert service["metadata"]["ownerReferences"][0]["kind"] == "Pod"
    assert emulator.objects("jobs") == []
    executor.stop(op.uuid)
    assert rec.final().status == "stopped"
    executor.cleanup(op.uuid)
    emulator.settle()
    assert emulator.objects("pods") == [] and emulator.objects("services") == []  # the Service went with its pod


def test_resubmitting_an_attempt_adopts_it(emulator: Emulator, make_executor: MakeExecutor) -> None:
    first = make_executor(kernel_id="k")
    op = make_op(first, script={"main": {"hold": True}})
    rec = UpdateRecorder()
    first.submit(op, rec)
    rec.until("running")
    # A second engine that crashed between create and saving its handle submits the same attempt again.
    second = make_executor(kernel_id="k2")
    rec2 = UpdateRecorder()
    handle = second.submit(op, rec2)
    assert handle["attempt"] == 1 and len(emulator.objects("jobs")) == 1
    rec2.until("running")
    emulator.finish(emulator.require_pod_of(op.uuid)["metadata"]["name"])
    assert rec2.final().status == "succeeded"


def test_a_name_taken_by_another_run_is_an_error(emulator: Emulator, executor: KubernetesExecutor) -> None:
    op = make_op(executor)
    # Same name, another run, still running (a finished one's Job is deleted once it is done: the name is free).
    other = make_op(executor, uuid=op.uuid[:8] + "f" * 24, script={"main": {"hold": True}})
    executor.submit(other, UpdateRecorder())
    with pytest.raises(K8sSubmitError, match="exists and is not run"):
        executor.submit(op, UpdateRecorder())


def test_a_retry_is_the_next_attempt(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, script={"main": {"exit": 1}})
    executor.submit(op, rec)
    assert rec.final().status == "failed"
    rec2 = UpdateRecorder()
    handle = executor.submit(op, rec2)
    assert handle["name"].endswith("-a2") and handle["attempt"] == 2
    assert rec2.final().status == "failed"
    # Each attempt's Job is deleted once it is final (its logs archived first).
    wait_for(lambda: not emulator.objects("jobs"), emulator, what="both attempts' Jobs deleted")


def test_reattach_after_a_restart(emulator: Emulator, make_executor: MakeExecutor) -> None:
    old = make_executor(kernel_id="before")
    op = make_op(old, script={"main": {"hold": True, "message": outputs_message(step=7)}})
    handle = old.submit(op, UpdateRecorder())
    wait_for(lambda: (emulator.pod_of(op.uuid) or {}).get("status", {}).get("phase") == "Running", emulator)
    old.shutdown(stop_running=False)
    assert emulator.objects("jobs"), "kept for re-attach"
    new = make_executor(kernel_id="after")
    rec = UpdateRecorder()
    assert new.reattach(op, handle, rec) is True
    assert rec.until("running").reason == "ContainerStarted"
    assert emulator.require_pod_of(op.uuid)["metadata"]["labels"][names.KERNEL] == "after"  # adopted
    emulator.finish(emulator.require_pod_of(op.uuid)["metadata"]["name"], message=outputs_message(step=7))
    assert rec.final().outputs == {"step": 7}
    assert new.reattach(make_op(new), {"name": "missing-x", "attempt": 1}, UpdateRecorder()) is False


def test_reattach_to_a_run_that_finished_meanwhile(emulator: Emulator, make_executor: MakeExecutor) -> None:
    old = make_executor(kernel_id="before")
    op = make_op(old, script={"main": {"hold": True}})
    handle = old.submit(op, UpdateRecorder())
    wait_for(lambda: (emulator.pod_of(op.uuid) or {}).get("status", {}).get("phase") == "Running", emulator)
    old.shutdown(stop_running=False)
    emulator.finish(emulator.require_pod_of(op.uuid)["metadata"]["name"], exit_code=4)
    emulator.settle()
    rec = UpdateRecorder()
    assert make_executor(kernel_id="after").reattach(op, handle, rec)
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "Error")
    assert "running" in rec.statuses  # it did run: reported before its end


def test_a_run_that_ended_while_no_one_watched_is_reported_with_its_own_end(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    # A restarted engine must record when the run ended (the container's finishedAt), not when someone
    # re-attached: an op that took 3 s must not show, nor hand its hooks, the time until the attach.
    old = make_executor(kernel_id="before")
    op = make_op(old, script={"main": {"hold": True}})
    handle = old.submit(op, UpdateRecorder())
    wait_for(lambda: (emulator.pod_of(op.uuid) or {}).get("status", {}).get("phase") == "Running", emulator)
    old.shutdown(stop_running=False)
    emulator.finish(emulator.require_pod_of(op.uuid)["metadata"]["name"], exit_code=0)
    emulator.settle()
    state = emulator.require_pod_of(op.uuid)["status"]["containerStatuses"][0]["state"]
    ended = parse_time(state["terminated"]["finishedAt"])
    assert ended is not None
    testkit.eventually(lambda: time.time() > ended + 3, what="the end a few seconds behind")  # the attach comes later
    rec = UpdateRecorder()
    assert make_executor(kernel_id="after").reattach(op, handle, rec)
    final = rec.final()
    assert final.status == "succeeded"
    assert final.at == ended


def test_reattach_to_a_run_whose_pod_was_deleted_meanwhile(emulator: Emulator, make_executor: MakeExecutor) -> None:
    # `kubectl delete pod` while no engine ran: the Job failed (BackoffLimitExceeded: the deleted pod is its one
    # failure) and no pod is left; a restartPolicy Never pod that failed by itself would still be there.
    old = make_executor(kernel_id="before")
    op = make_op(old, script={"main": {"hold": True}})
    handle = old.submit(op, UpdateRecorder())
    wait_for(lambda: (emulator.pod_of(op.uuid) or {}).get("status", {}).get("phase") == "Running", emulator)
    old.shutdown(stop_running=False)
    emulator.store.delete("pods", "default", emulator.require_pod_of(op.uuid)["metadata"]["name"], {})
    job = names.resource_name(op.name, op.uuid)
    wait_for(lambda: any(c["type"] == "Failed" for c in (emulator.store.get("jobs", "default", job).get("status") or {})
                         .get("conditions") or ()), emulator, what="the Job failed")  # fmt: skip
    rec = UpdateRecorder()
    assert make_executor(kernel_id="after").reattach(op, handle, rec)
    final = rec.final()
    assert (final.status, final.reason) == ("stopped", "Deleted")


def test_shutdown_removes_this_kernels_runs(emulator: Emulator, make_executor: MakeExecutor) -> None:
    mine = make_executor(kernel_id="mine")
    theirs = make_executor(kernel_id="theirs")
    recs = [UpdateRecorder(), UpdateRecorder()]
    ops = [make_op(mine, script={"main": {"hold": True}}), make_op(theirs, script={"main": {"hold": True}})]
    mine.submit(ops[0], recs[0])
    theirs.submit(ops[1], recs[1])
    recs[0].until("running")
    recs[1].until("running")
    mine.shutdown()
    assert recs[0].final().status == "stopped"
    emulator.settle()
    assert [j["metadata"]["labels"][names.KERNEL] for j in emulator.objects("jobs")] == ["theirs"]
    kernels = [
        c["metadata"]["name"]
        for c in emulator.objects("configmaps")
        if c["metadata"]["name"].startswith("polynb-kernel-")
    ]
    assert kernels == ["polynb-kernel-theirs"]


def test_sweep_removes_the_runs_of_gone_kernels(emulator: Emulator, make_executor: MakeExecutor) -> None:
    for kernel in ("dead", "kept"):
        ex = make_executor(kernel_id=kernel, lease_seconds=60)
        rec = UpdateRecorder()
        ex.submit(make_op(ex, script={"main": {"hold": True}}), rec)
        rec.until("running")
        ex.shutdown(stop_running=False)  # runs kept, kernel released
    # "dead" crashed instead: it never released its runs (and stopped beating).
    emulator.store.patch(
        "configmaps",
        "default",
        "polynb-kernel-dead",
        "application/merge-patch+json",
        {"metadata": {"annotations": {names.RELEASED_ANNOTATION: "false"}}},
    )
    sweeper = make_executor(kernel_id="new", lease_seconds=60)
    assert k8s_kernel.sweep(sweeper.api, "default", now=time.time() + 30, exclude="new") == []  # lease not over
    assert k8s_kernel.sweep(sweeper.api, "default", now=time.time() + 61, exclude="new") == ["dead"]
    emulator.settle()
    assert [j["metadata"]["labels"][names.KERNEL] for j in emulator.objects("jobs")] == ["kept"]
    assert emulator.objects("configmaps", selector="polynb.io/kernel=dead") == []


def test_logs_follow_waits_for_the_container_and_resumes_without_duplicates(
    emulator: Emulator, executor: KubernetesExecutor
) -> None:
    rec = UpdateRecorder()
    op = make_op(
        executor, script={"main": {"hold": True, "logs": ["one", "two"]}}, pod_script={"unschedulable": "later"}
    )
    executor.submit(op, rec)
    rec.until("unschedulable")
    lines = executor.logs(op.uuid, follow=True)
    pod = emulator.require_pod_of(op.uuid)["metadata"]["name"]
    emulator.schedule(pod)
    assert next(lines) == "one"  # waited for the container to start
    assert next(lines) == "two"
    emulator.drop_logs()  # the stream breaks: resumed from the last timestamp
    emulator.log(pod, "main", "three")
    assert next(lines) == "three"
    emulator.finish(pod)
    assert list(lines) == []  # ends with the container, no line twice
    assert list(executor.logs(op.uuid)) == ["one", "two", "three"]


def test_timeout_is_a_backstop_deadline(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, timeout=60, ttl=600, script={"main": {"hold": True}})
    executor.submit(op, rec)
    rec.until("running")
    job = emulator.objects("jobs")[0]
    assert job["spec"]["activeDeadlineSeconds"] == 60 + 30 and job["spec"]["ttlSecondsAfterFinished"] == 600
    emulator.advance(91)  # the scheduler did not stop it (it would have at 60 s): Kubernetes does
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "DeadlineExceeded")


def test_a_job_deleted_outside_polynb_is_stopped(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    op = make_op(executor, script={"main": {"hold": True}})
    executor.submit(op, rec)
    rec.until("running")
    emulator.store.delete("jobs", "default", names.resource_name(op.name, op.uuid), {"propagationPolicy": "Background"})
    final = rec.final()
    assert (final.status, final.reason) == ("stopped", "Deleted")


def test_one_watch_whatever_the_number_of_ops(emulator: Emulator, executor: KubernetesExecutor) -> None:
    recs = []
    for i in range(20):
        rec = UpdateRecorder()
        executor.submit(make_op(executor, name=f"op{i}"), rec)
        recs.append(rec)
    for rec in recs:
        assert rec.final().status == "succeeded"
    counts = emulator.counts()
    assert emulator.max_open_watches == 1 and counts["watch"] == 1
    assert counts["create"] == 20 + 2  # the Jobs, the kernel's ConfigMap and the runtime bundle's
    # The namespace check and each op's log (archived before its Job is deleted); sweep and the informer's list.
    assert counts["get"] <= 1 + 20 and counts["list"] <= 3
