"""The kubernetes executor under faults: 410 after compaction, dropped watches, 5xx, 403, 401, 422, a
missing namespace, bookmarks. Each test says how the fault is survived (or reported)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import MakeExecutor, ManualClock, make_op, outputs_message, wait_for
from support.recorder import UpdateRecorder

from polynb.compiler.types import ContainerSpec, InitStep
from polynb.executors.kubernetes.config import K8sConfigError
from polynb.executors.kubernetes.executor import K8sSubmitError, KubernetesExecutor
from polynb.executors.kubernetes.settings import KubernetesSettings

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig
make_executor = testkit.make_executor
executor = testkit.executor


def running_pod(emulator: Emulator, executor: KubernetesExecutor, rec: UpdateRecorder, **script: object) -> str:
    op = make_op(executor, script={"main": {"hold": True, **script}})
    executor.submit(op, rec)
    rec.until("running")
    return str(emulator.require_pod_of(op.uuid)["metadata"]["name"])


def test_410_after_compaction_relists_without_losing_or_repeating(
    emulator: Emulator, executor: KubernetesExecutor
) -> None:
    rec, gone = UpdateRecorder(), UpdateRecorder()
    pod = running_pod(emulator, executor, rec)
    other = running_pod(emulator, executor, gone)
    informer = executor._informer
    assert informer is not None and informer.relists == 1
    emulator.fail(503, times=10**6, verb="watch")  # an outage for watches...
    emulator.drop_watches()
    emulator.finish(pod, message=outputs_message(acc=0.7))  # ...during which the run ends
    emulator.store.delete(
        "jobs",
        "default",
        emulator.require_pod_of(gone.seen[0].run_uuid)["metadata"]["labels"]["job-name"],
        {"propagationPolicy": "Background"},
    )  # and another is deleted by hand
    emulator.settle()
    emulator.compact()  # the history of the gap is gone: resuming gets 410 Gone
    emulator.faults.failures.clear()
    final = rec.final()
    assert (final.status, final.outputs) == ("succeeded", {"acc": 0.7})
    assert (gone.final().status, gone.seen[-1].reason) == ("stopped", "Deleted")  # a DELETED from the relist diff
    assert informer.relists == 2
    assert rec.statuses.count("running") == 1 and rec.statuses.count("succeeded") == 1
    assert other  # its pod existed before the gap


def test_a_dropped_watch_resumes_from_its_resource_version(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    pod = running_pod(emulator, executor, rec)
    informer = executor._informer
    assert informer is not None
    emulator.drop_watches()
    emulator.finish(pod)
    assert rec.final().status == "succeeded"
    assert informer.relists == 1  # no re-list: resumed where it was
    assert emulator.counts()["watch"] >= 2


def test_bookmarks_move_the_resource_version(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    running_pod(emulator, executor, rec)
    informer = executor._informer
    assert informer is not None
    emulator.store.create("configmaps", "default", {"metadata": {"name": "unrelated"}})  # not a pod
    emulator.send_bookmarks()
    wait_for(lambda: informer.resource_version == str(emulator.store.rv), emulator, what="bookmark")


def test_5xx_on_create_is_retried_and_on_watch_backed_off(emulator: Emulator, executor: KubernetesExecutor) -> None:
    emulator.fail(500, times=2, verb="create", resource="jobs")
    emulator.fail(503, times=3, verb="watch")
    rec = UpdateRecorder()
    executor.submit(make_op(executor), rec)
    assert rec.final().status == "succeeded"
    jobs = emulator.counts(resource="jobs")
    assert jobs["create"] == 3
    # One Job was made (the failed creates made none); the executor may have deleted it once the run ended.
    assert len(emulator.objects("jobs")) + jobs["delete"] == 1


def test_403_on_create_says_what_is_missing(emulator: Emulator, executor: KubernetesExecutor) -> None:
    emulator.deny("create", "jobs")
    with pytest.raises(K8sSubmitError) as exc:
        executor.submit(make_op(executor, name="train"), UpdateRecorder())
    message = str(exc.value)
    assert "cannot create the Job of op 'train': RBAC denies verb 'create' on resource 'jobs.batch'" in message
    assert 'cannot create resource "jobs"' in message and "docs/kubernetes.md" in message


def test_403_on_the_watch_warns_the_live_runs(emulator: Emulator, executor: KubernetesExecutor) -> None:
    rec = UpdateRecorder()
    pod = running_pod(emulator, executor, rec)
    emulator.deny("watch", "pods")
    emulator.drop_watches()
    warning = rec.until("warning", reason="WatchForbidden")
    assert "cannot watch pods" in warning.message
    emulator.allow("watch", "pods")
    emulator.finish(pod)
    assert rec.final().status == "succeeded"


def test_422_is_a_clear_submit_error(emulator: Emulator, executor: KubernetesExecutor) -> None:
    op = make_op(executor, k8s={"resources": {"limits": {"cpu": "lots"}}})
    with pytest.raises(K8sSubmitError) as exc:
        executor.submit(op, UpdateRecorder())
    assert "Kubernetes rejected it as invalid: spec.template.spec.containers[0].resources.limits[cpu]" in str(exc.value)
    emulator.reject_creates("jobs", [{"field": "spec.template.spec.securityContext", "message": "runAsNonRoot"}])
    with pytest.raises(K8sSubmitError, match="securityContext: runAsNonRoot"):
        executor.submit(make_op(executor), UpdateRecorder())
    assert emulator.objects("jobs") == []  # nothing half-submitted


def test_missing_namespace_is_reported_before_anything_is_created(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    executor = make_executor(namespace="ml-team")
    with pytest.raises(K8sSubmitError) as exc:
        executor.submit(make_op(executor), UpdateRecorder())
    assert "namespace 'ml-team' does not exist" in str(exc.value)
    assert "kubectl create namespace ml-team" in str(exc.value)
    assert emulator.counts()["create"] == 0


def test_401_names_the_credentials(emulator: Emulator, make_executor: MakeExecutor, tmp_path: Path) -> None:
    emulator.faults.token = "right"
    wrong = emulator.write_kubeconfig(tmp_path / "wrong", token="wrong")
    executor = make_executor(kubeconfig=str(wrong))
    with pytest.raises(K8sSubmitError, match="rejected the credentials"):
        executor.submit(make_op(executor), UpdateRecorder())


def test_no_configuration_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(K8sConfigError, match="no Kubernetes configuration"):
        KubernetesExecutor()
    bad = tmp_path / "kc"
    bad.write_text("{}")
    with pytest.raises(K8sConfigError, match=f"cannot use kubeconfig {bad}"):
        KubernetesExecutor(KubernetesSettings(kubeconfig=str(bad)))


def test_kubeconfig_from_the_environment_and_its_namespace(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = emulator.write_kubeconfig(tmp_path / "kc", namespace="team")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{path}")  # merged, as kubectl does
    executor = KubernetesExecutor(KubernetesSettings(kernel_id="k"))
    try:
        assert executor.namespace == "team" and executor.cluster.context == "emulator"
    finally:
        executor.shutdown()


def test_configuration_from_the_environment(emulator: Emulator, kubeconfig: Path) -> None:
    env = {
        "POLYNB_K8S_NAMESPACE": "default",
        "POLYNB_K8S_KERNEL_ID": "cli-1",
        "POLYNB_K8S_PORT_FORWARD": "0",
        "POLYNB_K8S_TOOLS_IMAGE": "tools:1",
        "POLYNB_K8S_ARTIFACTS_CLAIM": "shared",
    }
    executor = KubernetesExecutor(replace(KubernetesSettings.from_env(env), kubeconfig=str(kubeconfig)))
    try:
        assert (executor.kernel_id, executor.port_forward) == ("cli-1", False)
        assert (executor.config.tools_image, executor.config.artifacts_claim) == ("tools:1", "shared")
    finally:
        executor.shutdown()


# -- issue 10: faults a real cluster produces ---------------------------------------------------------------


def test_a_failed_service_create_deletes_its_pod_and_names_the_service(
    emulator: Emulator, executor: KubernetesExecutor
) -> None:
    emulator.deny("create", "services")
    op = make_op(executor, kind="service", ports=1, script={"main": {"hold": True}})
    with pytest.raises(K8sSubmitError) as exc:
        executor.submit(op, UpdateRecorder())
    message = str(exc.value)
    assert f"cannot create Service 'svc-{op.uuid[:12]}' of op 'train'" in message
    assert "RBAC denies verb 'create' on resource 'services'" in message
    wait_for(lambda: not emulator.objects("pods"), emulator, what="the service's Pod deleted")


def test_a_job_blocked_by_quota_fails_with_the_event_after_its_timeout(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    clock = ManualClock()
    executor = make_executor(clock=clock, pod_start_timeout=60, failed_create_timeout=300)
    emulator.pod_quota(0, name="team-quota")
    rec = UpdateRecorder()
    op = make_op(executor)
    executor.submit(op, rec)
    events = wait_for(lambda: emulator.objects("events"), emulator, what="the FailedCreate event")
    assert events[-1]["reason"] == "FailedCreate"
    clock.advance(61)
    executor._check_stuck()
    warning = rec.until("warning", reason="FailedCreate")
    assert "exceeded quota: team-quota" in warning.message
    clock.advance(240)
    executor._check_stuck()
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "FailedCreate")
    assert "failed_create_timeout" in final.message
    assert 'pods "' in final.message and "exceeded quota: team-quota, requested: pods=1" in final.message
    wait_for(lambda: not emulator.objects("jobs"), emulator, what="the blocked Job deleted")


def test_image_pull_back_off_is_a_warning_until_its_grace_is_over(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    clock = ManualClock()
    executor = make_executor(clock=clock, image_pull_grace=300)
    rec = UpdateRecorder()
    op = make_op(executor, script={"main": {"image_pull": "backoff"}})
    executor.submit(op, rec)
    warning = rec.until("warning", reason="ImagePullBackOff")
    assert "Back-off pulling image" in warning.message
    clock.advance(299)
    executor._check_stuck()
    emulator.settle()
    assert not any(u.is_final for u in rec.events)  # still waiting for the registry
    clock.advance(2)
    executor._check_stuck()
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "ImagePullBackOff")
    assert "image_pull_grace" in final.message
    wait_for(lambda: not emulator.objects("jobs"), emulator, what="the stuck Job deleted")


def test_pod_security_restricted_refuses_polynb_containers_without_the_profile(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    emulator.enforce_pod_security("restricted")
    executor = make_executor()
    op = make_op(executor, kind="service", ports=1, script={"main": {"hold": True}})
    with pytest.raises(K8sSubmitError) as exc:
        executor.submit(op, UpdateRecorder())
    message = str(exc.value)
    assert "PodSecurity admission of namespace 'default' refuses the pod at level restricted:latest" in message
    assert "not a permission problem" in message and "--k8s-security-profile restricted" in message
    assert "RBAC" not in message and "Role" not in message


def test_the_restricted_profile_is_admitted_by_a_restricted_namespace(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    emulator.enforce_pod_security("restricted")
    executor = make_executor(security_profile="restricted")
    rec = UpdateRecorder()
    step = InitStep(kind="file", spec={"filename": "a.txt", "content": "x"})
    sidecar = ContainerSpec(name="logger", image="busybox:1.36", command=("sh",))
    op = make_op(executor, init=(step,), sidecars=(sidecar,), script={"main": {"logs": ["ok"]}})
    executor.submit(op, rec)
    assert rec.final().status == "succeeded"
    events = emulator.objects("events")
    assert not [e for e in events if e["reason"] == "FailedCreate"]


def test_a_job_refused_by_pod_security_fails_with_the_admission_message(
    emulator: Emulator, make_executor: MakeExecutor
) -> None:
    emulator.enforce_pod_security("restricted")
    clock = ManualClock()
    executor = make_executor(clock=clock, failed_create_timeout=120)
    rec = UpdateRecorder()
    executor.submit(make_op(executor), rec)
    wait_for(lambda: emulator.objects("events"), emulator, what="the FailedCreate event")
    clock.advance(121)
    executor._check_stuck()
    final = rec.final()
    assert (final.status, final.reason) == ("failed", "FailedCreate")
    assert 'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false' in final.message


def test_403_quota_on_a_service_pod_is_not_blamed_on_rbac(emulator: Emulator, executor: KubernetesExecutor) -> None:
    emulator.pod_quota(0, name="small")
    op = make_op(executor, kind="service", ports=1, script={"main": {"hold": True}})
    with pytest.raises(K8sSubmitError) as exc:
        executor.submit(op, UpdateRecorder())
    message = str(exc.value)
    assert "ResourceQuota 'small' of namespace 'default' is exhausted" in message
    assert "RBAC" not in message
