"""Pod lifecycle on the executing kubelet: init containers in order, native sidecars stopped after the main
container, termination messages with the kubelet's limits, graceful deletes, Jobs whose pods really run,
and kubectl as a second client."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from k8s_emulator import Emulator, testkit
from k8s_emulator.testkit import TIMEOUT, kubectl, wait_pod

executing_emulator = testkit.executing_emulator

READY_THEN_IGNORE_TERM = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "if os.path.isdir('/shared'): open('/shared/ready', 'w').close()\n"
    "time.sleep(300)\n"
)
READY_THEN_REPORT_TERM = (
    "import os, signal, sys, time\n"
    "def term(*_):\n"
    "    print('got SIGTERM', flush=True)\n"
    "    sys.exit(143)\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "print('ready', flush=True)\n"
    "if os.path.isdir('/shared'): open('/shared/ready', 'w').close()\n"
    "time.sleep(300)\n"
)


WAIT_FOR_THE_SIDECAR = "import os, time\nwhile not os.path.exists('/shared/ready'): time.sleep(0.02)\nprint('main ran')"
"""The main container starts once the sidecar has started; this waits until it handles signals too."""
SHARED = {"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}


@pytest.fixture
def core(executing_emulator: Emulator) -> Iterator[Any]:
    assert executing_emulator.kubeconfig is not None
    api = config.new_client_from_config(str(executing_emulator.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def py(name: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "python:3.11-slim", "command": ["python3", "-c", code], **extra}


def pod(name: str, *containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **spec: Any) -> Any:
    body: dict[str, Any] = {"restartPolicy": "Never", "containers": list(containers), **spec}
    if init:
        body["initContainers"] = list(init)
    return {"metadata": {"name": name}, "spec": body}


def log(core: Any, name: str, container: str = "main") -> str:
    return str(core.read_namespaced_pod_log(name, "default", container=container))


def wait_log(emu: Emulator, core: Any, name: str, text: str, container: str = "main") -> None:
    def has() -> bool:
        try:
            return text in log(core, name, container)
        except client.ApiException:
            return False  # not started yet

    testkit.eventually(has, what=f"{text!r} in the log of {name}/{container}")


def last_state_before_removal(core: Any, name: str, resource_version: str) -> Any:
    """The pod as it was last written before it was removed (its containers' final states)."""
    last = None
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_pod,
        "default",
        field_selector=f"metadata.name={name}",
        resource_version=resource_version,
        timeout_seconds=int(TIMEOUT),
    ):
        if event["type"] == "DELETED":
            stream.stop()
            return last
        last = event["object"]
    raise AssertionError(f"{name} was never removed")


def states(p: Any, field: str = "container_statuses") -> dict[str, Any]:
    return {s.name: s.state for s in getattr(p.status, field) or ()}


def test_init_containers_run_in_order_before_the_main_container(core: Any) -> None:
    work = [{"name": "w", "mountPath": "/w"}]
    core.create_namespaced_pod(
        "default",
        pod(
            "ordered",
            py("main", "print(open('/w/trail').read(), end='')", volumeMounts=work),
            init=(
                py("first", "open('/w/trail', 'a').write('first\\n')", volumeMounts=work),
                py("second", "open('/w/trail', 'a').write('second\\n')", volumeMounts=work),
            ),
            volumes=[{"name": "w", "emptyDir": {}}],
        ),
    )
    done = wait_pod(core, "ordered", "Succeeded")
    assert log(core, "ordered") == "first\nsecond\n"
    assert [s.terminated.reason for s in states(done, "init_container_statuses").values()] == ["Completed"] * 2


def test_a_failed_init_container_fails_a_never_restarting_pod(core: Any) -> None:
    core.create_namespaced_pod(
        "default",
        pod("initfail", py("main", "print('never')"), init=(py("setup", "raise SystemExit(3)"),)),
    )
    failed = wait_pod(core, "initfail", "Failed")
    init = states(failed, "init_container_statuses")["setup"].terminated
    assert (init.exit_code, init.reason) == (3, "Error")
    assert states(failed)["main"].waiting.reason == "PodInitializing"
    assert {c.type: c.status for c in failed.status.conditions}["Initialized"] == "False"


def test_a_native_sidecar_starts_first_and_gets_sigterm_after_the_main_container(
    executing_emulator: Emulator, core: Any
) -> None:
    sidecar = py("sidecar", READY_THEN_REPORT_TERM, restartPolicy="Always", **SHARED)
    core.create_namespaced_pod(
        "default",
        pod(
            "sided",
            py("main", WAIT_FOR_THE_SIDECAR, **SHARED),
            init=(sidecar,),
            terminationGracePeriodSeconds=20,
            volumes=[{"name": "shared", "emptyDir": {}}],
        ),
    )
    done = wait_pod(core, "sided", "Succeeded")
    term = states(done, "init_container_statuses")["sidecar"].terminated
    assert (term.exit_code, term.reason) == (143, "Error")
    assert log(core, "sided", "sidecar") == "ready\ngot SIGTERM\n"
    assert log(core, "sided") == "main ran\n"
    main = states(done)["main"].terminated
    assert main.finished_at <= term.finished_at


def test_a_sidecar_that_ignores_sigterm_is_killed_after_the_grace_period(core: Any) -> None:
    core.create_namespaced_pod(
        "default",
        pod(
            "stubborn",
            py("main", WAIT_FOR_THE_SIDECAR, **SHARED),
            init=(py("sidecar", READY_THEN_IGNORE_TERM, restartPolicy="Always", **SHARED),),
            terminationGracePeriodSeconds=1,
            volumes=[{"name": "shared", "emptyDir": {}}],
        ),
    )
    done = wait_pod(core, "stubborn", "Succeeded")
    assert states(done, "init_container_statuses")["sidecar"].terminated.exit_code == 137


def test_termination_messages_are_capped_at_4096_bytes(core: Any) -> None:
    core.create_namespaced_pod(
        "default", pod("big", py("main", "open('/dev/termination-log', 'w').write('x' * 10000)"))
    )
    done = wait_pod(core, "big", "Succeeded")
    assert states(done)["main"].terminated.message == "x" * 4096


def test_a_pods_termination_messages_share_12_kib(core: Any) -> None:
    write = "open('/dev/termination-log', 'w').write('y' * 5000)"
    core.create_namespaced_pod(
        "default",
        pod("shared", *(py(f"c{i}", write) for i in range(4))),  # 12 KiB / 4 containers = 3072 bytes each
    )
    done = wait_pod(core, "shared", "Succeeded")
    assert {len(s.terminated.message) for s in states(done).values()} == {3072}


def test_a_custom_termination_message_path_is_read(core: Any) -> None:
    container = py(
        "main", "open('/tmp/outputs.json', 'w').write('{\"loss\": 0.5}')", terminationMessagePath="/tmp/outputs.json"
    )
    core.create_namespaced_pod("default", pod("custom", container))
    done = wait_pod(core, "custom", "Succeeded")
    assert states(done)["main"].terminated.message == '{"loss": 0.5}'


def test_fallback_to_logs_on_error_uses_the_last_80_lines_within_2048_bytes(core: Any) -> None:
    code = "for i in range(200): print(f'line {i:03d}')\nraise SystemExit(2)"
    core.create_namespaced_pod(
        "default", pod("fallback", py("main", code, terminationMessagePolicy="FallbackToLogsOnError"))
    )
    done = wait_pod(core, "fallback", "Failed")
    message = states(done)["main"].terminated.message
    assert message.splitlines() == [f"line {i:03d}" for i in range(120, 200)]  # 80 lines of 9 bytes: 720 bytes
    core.create_namespaced_pod(
        "default",
        pod(
            "fallback-long",
            py("main", "print('z' * 5000)\nraise SystemExit(2)", terminationMessagePolicy="FallbackToLogsOnError"),
        ),
    )
    done = wait_pod(core, "fallback-long", "Failed")
    assert len(states(done)["main"].terminated.message.encode()) == 2048


def test_fallback_to_logs_is_not_used_on_success(core: Any) -> None:
    core.create_namespaced_pod(
        "default", pod("quiet", py("main", "print('a log')", terminationMessagePolicy="FallbackToLogsOnError"))
    )
    done = wait_pod(core, "quiet", "Succeeded")
    assert states(done)["main"].terminated.message is None


def test_delete_sends_sigterm_then_removes_the_pod(executing_emulator: Emulator, core: Any) -> None:
    core.create_namespaced_pod("default", pod("graceful", py("main", READY_THEN_REPORT_TERM)))
    wait_log(executing_emulator, core, "graceful", "ready")
    pid = executing_emulator.container_pids("graceful")["main"]
    address = executing_emulator.pod_address("graceful")
    assert address is not None and address.startswith("127.")
    deleting = core.delete_namespaced_pod("graceful", "default")
    assert deleting.metadata.deletion_timestamp is not None
    final = last_state_before_removal(core, "graceful", deleting.metadata.resource_version)
    assert states(final)["main"].terminated.exit_code == 143
    assert final.status.phase == "Failed"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_delete_kills_what_ignores_sigterm_after_the_grace_period(executing_emulator: Emulator, core: Any) -> None:
    core.create_namespaced_pod(
        "default", pod("deaf", py("main", READY_THEN_IGNORE_TERM), terminationGracePeriodSeconds=1)
    )
    wait_log(executing_emulator, core, "deaf", "ready")
    deleting = core.delete_namespaced_pod("deaf", "default")
    assert deleting.metadata.deletion_grace_period_seconds == 1
    final = last_state_before_removal(core, "deaf", deleting.metadata.resource_version)
    assert states(final)["main"].terminated.exit_code == 137


def test_a_job_retries_real_pods_up_to_its_backoff_limit(executing_emulator: Emulator, core: Any) -> None:
    assert executing_emulator.kubeconfig is not None
    api = config.new_client_from_config(str(executing_emulator.kubeconfig))
    batch: Any = client.BatchV1Api(api)
    template = {
        "spec": {
            "restartPolicy": "Never",
            "containers": [py("main", "import socket; print(socket.gethostname()); raise SystemExit(1)")],
        }
    }
    batch.create_namespaced_job(
        "default", {"metadata": {"name": "flaky"}, "spec": {"backoffLimit": 1, "template": template}}
    )

    def failed() -> Any:
        job = batch.read_namespaced_job("flaky", "default")
        return any(c.type == "Failed" and c.status == "True" for c in job.status.conditions or ())

    testkit.eventually(failed, what="the Job to fail")
    pods = core.list_namespaced_pod("default", label_selector="job-name=flaky").items
    assert len(pods) == 2 and {p.status.phase for p in pods} == {"Failed"}
    for p in pods:
        assert log(core, p.metadata.name) == p.metadata.name + "\n"
    api.close()


def test_a_deleted_pod_counts_as_a_failure_of_its_job(executing_emulator: Emulator, core: Any) -> None:
    # The Job controller counts a pod deleted before it succeeded as failed (its job-tracking finalizer keeps
    # it until counted; pkg/controller/job isPodFailed), so a Job with backoffLimit 0 fails and gets no new
    # pod: https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-backoff-failure-policy
    assert executing_emulator.kubeconfig is not None
    api = config.new_client_from_config(str(executing_emulator.kubeconfig))
    batch: Any = client.BatchV1Api(api)
    template = {"spec": {"restartPolicy": "Never", "containers": [py("main", READY_THEN_REPORT_TERM)]}}
    batch.create_namespaced_job(
        "default", {"metadata": {"name": "once"}, "spec": {"backoffLimit": 0, "template": template}}
    )
    first = testkit.eventually(lambda: core.list_namespaced_pod("default", label_selector="job-name=once").items)
    name = first[0].metadata.name
    wait_log(executing_emulator, core, name, "ready")
    core.delete_namespaced_pod(name, "default")
    testkit.wait_gone(core, name)

    def failed() -> Any:
        job = batch.read_namespaced_job("once", "default")
        return next((c for c in job.status.conditions or () if c.type == "Failed" and c.status == "True"), None)

    assert testkit.eventually(failed, what="the Job to fail").reason == "BackoffLimitExceeded"
    executing_emulator.settle()
    assert core.list_namespaced_pod("default", label_selector="job-name=once").items == []
    assert batch.read_namespaced_job("once", "default").status.failed == 1
    api.close()


def test_kubectl_applies_a_pod_waits_for_it_and_reads_its_log(executing_emulator: Emulator) -> None:
    assert executing_emulator.kubeconfig is not None
    manifest = {"apiVersion": "v1", "kind": "Pod", **pod("via-kubectl", py("main", "print('from kubectl')"))}
    kubectl(executing_emulator.kubeconfig, "create", "-f", "-", stdin=json.dumps(manifest))
    kubectl(
        executing_emulator.kubeconfig,
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/via-kubectl",
        "--timeout=30s",
    )
    assert kubectl(executing_emulator.kubeconfig, "logs", "via-kubectl") == "from kubectl\n"


def test_kubectl_creates_a_secret_and_a_claim_that_pods_use(executing_emulator: Emulator, core: Any) -> None:
    kube = executing_emulator.kubeconfig
    assert kube is not None
    # (``kubectl create secret generic`` sends protobuf, which the emulator does not serve: a manifest instead)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-key"}, "stringData": {"key": "k-123"}}
    kubectl(kube, "apply", "-f", "-", stdin=json.dumps(secret))
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "ws"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kubectl(kube, "apply", "-f", "-", stdin=json.dumps(claim))
    assert kubectl(kube, "get", "pvc", "ws", "-o", "jsonpath={.status.phase}") == "Bound"
    container = py(
        "main",
        "import os; open('/ws/k', 'w').write(os.environ['KEY']); print('ok')",
        env=[{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "api-key", "key": "key"}}}],
        volumeMounts=[{"name": "ws", "mountPath": "/ws"}],
    )
    core.create_namespaced_pod(
        "default", pod("uses", container, volumes=[{"name": "ws", "persistentVolumeClaim": {"claimName": "ws"}}])
    )
    wait_pod(core, "uses", "Succeeded")
    assert executing_emulator.kubelet is not None
    assert (executing_emulator.kubelet.root / "claims" / "default" / "ws" / "k").read_text() == "k-123"


def test_active_deadline_fails_the_pod_when_the_clock_passes_it(executing_emulator: Emulator, core: Any) -> None:
    core.create_namespaced_pod(
        "default",
        pod("late", py("main", READY_THEN_REPORT_TERM), activeDeadlineSeconds=60),
    )
    wait_log(executing_emulator, core, "late", "ready")
    executing_emulator.advance(61)
    failed = wait_pod(core, "late", "Failed")
    assert (failed.status.reason, states(failed)["main"].terminated.exit_code) == ("DeadlineExceeded", 143)


def test_on_failure_restarts_the_container_in_place(core: Any) -> None:
    code = (
        "import os\n"
        "if not os.path.exists('/w/tried'):\n"
        "    open('/w/tried', 'w').close(); print('first try fails'); raise SystemExit(1)\n"
        "print('second try')\n"
    )
    core.create_namespaced_pod(
        "default",
        pod(
            "again",
            py("main", code, volumeMounts=[{"name": "w", "mountPath": "/w"}]),
            volumes=[{"name": "w", "emptyDir": {}}],
            restartPolicy="OnFailure",
        ),
    )
    done = wait_pod(core, "again", "Succeeded")
    status = done.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert log(core, "again").splitlines()[-1] == "second try"


def test_a_job_under_on_failure_fails_at_the_first_restart_with_backoff_limit_0(
    executing_emulator: Emulator, core: Any
) -> None:
    # pkg/controller/job pastBackoffLimitOnFailure: the containers' restarts count against the backoffLimit;
    # with 0, the first restart fails the Job, which deletes its pod.
    # https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-backoff-failure-policy
    assert executing_emulator.kubeconfig is not None
    api = config.new_client_from_config(str(executing_emulator.kubeconfig))
    batch: Any = client.BatchV1Api(api)
    template = {
        "spec": {"restartPolicy": "OnFailure", "containers": [py("main", "print('boom'); raise SystemExit(2)")]}
    }
    batch.create_namespaced_job(
        "default", {"metadata": {"name": "crash"}, "spec": {"backoffLimit": 0, "template": template}}
    )

    def failed() -> Any:
        job = batch.read_namespaced_job("crash", "default")
        return next((c for c in job.status.conditions or () if c.type == "Failed" and c.status == "True"), None)

    assert testkit.eventually(failed, what="the Job to fail").reason == "BackoffLimitExceeded"
    testkit.eventually(lambda: not core.list_namespaced_pod("default", label_selector="job-name=crash").items,
                       what="its pod deleted")  # fmt: skip
    api.close()


def test_a_crash_looping_containers_log_is_its_last_runs(tmp_path: Path) -> None:
    # `kubectl logs` of a container waiting in CrashLoopBackOff shows its last run's log, not "waiting to start".
    with testkit.executing(tmp_path, crash_backoff=600) as emu:  # it waits in CrashLoopBackOff while we read
        assert emu.kubeconfig is not None
        api = config.new_client_from_config(str(emu.kubeconfig))
        core = client.CoreV1Api(api)
        code = "print('boom'); raise SystemExit(2)"
        core.create_namespaced_pod("default", pod("looping", py("main", code), restartPolicy="OnFailure"))

        def looping(p: Any) -> bool:
            s = (p.status.container_statuses or [None])[0]
            return s is not None and s.restart_count > 0 and s.state.waiting is not None

        wait_pod(core, "looping", looping)
        assert log(core, "looping") == "boom\n"
        core.delete_namespaced_pod("looping", "default", grace_period_seconds=0)
        api.close()


def test_pods_spread_over_the_two_nodes(executing_emulator: Emulator, core: Any) -> None:
    for name in ("left", "right"):
        core.create_namespaced_pod("default", pod(name, py("main", READY_THEN_REPORT_TERM)))
        wait_log(executing_emulator, core, name, "ready")
    nodes = {core.read_namespaced_pod(n, "default").spec.node_name for n in ("left", "right")}
    assert nodes == {"emu-node-1", "emu-node-2"}
    assert executing_emulator.pod_address("left") != executing_emulator.pod_address("right")


def test_run_as_user_runs_the_process_as_that_user(core: Any) -> None:
    code = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "open('/dev/termination-log', 'w').write('written as a user')\n"
        "open('/root/x', 'w')\n"
    )
    container = py("main", code, securityContext={"runAsUser": 1000, "runAsGroup": 3000})
    core.create_namespaced_pod("default", pod("user", container))
    failed = wait_pod(core, "user", "Failed")
    lines = log(core, "user").splitlines()
    assert "1000 3000" in lines  # stdout; the traceback is on stderr, another stream
    assert any(line.startswith("PermissionError") for line in lines)
    assert states(failed)["main"].terminated.message == "written as a user"


def test_run_as_non_root_without_a_user_is_a_config_error(core: Any) -> None:
    core.create_namespaced_pod("default", pod("rooted", py("main", "print(1)"), securityContext={"runAsNonRoot": True}))

    def config_error(p: Any) -> bool:
        statuses: list[Any] = p.status.container_statuses or []
        return (
            bool(statuses)
            and statuses[0].state.waiting is not None
            and (statuses[0].state.waiting.reason == "CreateContainerConfigError")
        )

    stuck = wait_pod(core, "rooted", config_error)
    message = stuck.status.container_statuses[0].state.waiting.message
    assert message.startswith('container has runAsNonRoot and image will run as root (pod: "rooted_default(')


def test_kubectl_sees_the_nodes_and_a_cordoned_node_gets_no_pods(executing_emulator: Emulator, core: Any) -> None:
    kube = executing_emulator.kubeconfig
    assert kube is not None
    nodes = json.loads(kubectl(kube, "get", "nodes", "-o", "json"))["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["emu-node-1", "emu-node-2"]
    assert all(c["status"] == "True" for n in nodes for c in n["status"]["conditions"] if c["type"] == "Ready")
    kubectl(kube, "cordon", "emu-node-1")
    for name in ("c1", "c2"):
        core.create_namespaced_pod("default", pod(name, py("main", "print(1)")))
        assert wait_pod(core, name, "Succeeded").spec.node_name == "emu-node-2"
    kubectl(kube, "cordon", "emu-node-2")
    core.create_namespaced_pod("default", pod("nowhere", py("main", "print(1)")))

    def unschedulable(p: Any) -> bool:
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in p.status.conditions or ())

    found = wait_pod(core, "nowhere", unschedulable)
    assert "2 node(s) were unschedulable" in found.status.conditions[0].message
    kubectl(kube, "uncordon", "emu-node-1")
    assert wait_pod(core, "nowhere", "Succeeded").spec.node_name == "emu-node-1"


def test_an_init_container_is_retried_under_on_failure(core: Any) -> None:
    code = "import os\nif not os.path.exists('/w/tried'):\n    open('/w/tried', 'w').close(); raise SystemExit(1)\n"
    work = {"volumeMounts": [{"name": "w", "mountPath": "/w"}]}
    core.create_namespaced_pod(
        "default",
        pod(
            "retried",
            py("main", "print('after init')"),
            init=(py("setup", code, **work),),
            volumes=[{"name": "w", "emptyDir": {}}],
            restartPolicy="OnFailure",
        ),
    )
    done = wait_pod(core, "retried", "Succeeded")
    setup = done.status.init_container_statuses[0]
    assert (setup.restart_count, setup.last_state.terminated.exit_code) == (1, 1)
    assert setup.state.terminated.reason == "Completed"


def test_an_eviction_marks_the_pod_as_disrupted_then_deletes_it_gracefully(
    executing_emulator: Emulator, core: Any
) -> None:
    # What `kubectl drain` (and a cluster autoscaler's scale-down) posts: the pods/eviction subresource. With no
    # PodDisruptionBudget, the API server adds the DisruptionTarget condition, then deletes the pod as any
    # deletion does (SIGTERM, grace period, removal).
    core.create_namespaced_pod("default", pod("drained", py("main", READY_THEN_REPORT_TERM)))
    wait_log(executing_emulator, core, "drained", "ready")
    with pytest.raises(client.exceptions.ApiException) as wrong:
        core.create_namespaced_pod_eviction("drained", "default", {"metadata": {"name": "other"}})
    assert wrong.value.status == 400
    before = core.read_namespaced_pod("drained", "default").metadata.resource_version
    core.create_namespaced_pod_eviction(
        "drained", "default", client.V1Eviction(metadata=client.V1ObjectMeta(name="drained"))
    )
    final = last_state_before_removal(core, "drained", before)
    [disruption] = [c for c in final.status.conditions if c.type == "DisruptionTarget"]
    assert (disruption.status, disruption.reason) == ("True", "EvictionByEvictionAPI")
    assert states(final)["main"].terminated.exit_code == 143
    with pytest.raises(client.exceptions.ApiException) as gone:
        core.create_namespaced_pod_eviction("drained", "default", {"metadata": {"name": "drained"}})
    assert gone.value.status == 404
