"""The scheduler's scenarios on the kubernetes executor (Engine + KubernetesExecutor + emulator):
events on running, skip on an early failure, hooks, retries, timeouts, stop, logs, ttl cleanup and
re-attach after an engine restart. Pods are scripted by image (``emulator.scripts``)."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from k8s_emulator import SCRIPT_ANNOTATION, Emulator, testkit
from k8s_emulator.testkit import TIMEOUT, wait_for

from polynb.compiler.pipeline import build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.executors.kubernetes.executor import K8sSubmitError, KubernetesExecutor
from polynb.executors.kubernetes.settings import KubernetesSettings
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.scheduler.executor_checks import check_submission
from polynb.spec.load import load_text
from polynb.spec.models import Component
from polynb.store import Store

emulator = testkit.emulator
kubeconfig = testkit.kubeconfig

SCRIPTS: dict[str, dict[str, Any]] = {
    "emu/ok": {"logs": ["training", "done"], "message": '{"loss": 0.125}'},
    "emu/hold": {"hold": True, "logs": ["serving"]},
    "emu/fail": {"exit": 1, "logs": ["Traceback", "RuntimeError: diverged"]},
    "emu/nopull": {"image_pull": "backoff"},
}


@dataclass
class K8sEnv:
    emulator: Emulator
    store: Store
    engine: Engine
    executor: KubernetesExecutor
    registry: ComponentRegistry
    events: list[EngineEvent]
    cond: threading.Condition

    def run(self, text: str) -> str:
        spec = load_text(textwrap.dedent(text))
        pipeline = build_pipeline(spec, params={}, registry=self.registry, base_dir=Path.cwd())
        return self.engine.submit(pipeline)

    def wait(self, uuid: str, **kwargs: Any) -> str:
        return self.engine.wait(uuid, timeout=TIMEOUT, **kwargs)

    def ops(self, dag_uuid: str) -> dict[str, Any]:
        return {r.name: r for r in self.store.children(dag_uuid)}

    def wait_event(self, predicate: Callable[[EngineEvent], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: any(predicate(e) for e in self.events), timeout=TIMEOUT)

    def kinds(self, uuid: str) -> list[str]:
        return [e.kind for e in self.store.events(run_uuid=uuid)]

    def pod(self, run_uuid: str) -> str:
        pod = wait_for(lambda: self.emulator.pod_of(run_uuid), self.emulator, what="the run's pod")
        return str(pod["metadata"]["name"])


def make_engine(
    emu: Emulator, kubeconfig: Path, store: Store, registry: ComponentRegistry, kernel: str
) -> tuple[Engine, KubernetesExecutor]:
    executor = KubernetesExecutor(
        KubernetesSettings(
            kubeconfig=str(kubeconfig),
            kernel_id=kernel,
            backoff=0.01,
            port_forward=False,
            shutdown_wait=10.0,
            # These tests read the Jobs a pipeline made (deleting finished runs: test_hygiene.py), and an
            # image that never comes fails at its first back-off (the pull's grace: test_faults.py).
            keep_finished=True,
            image_pull_grace=0,
        )
    )
    engine = Engine(
        store=store,
        executors={"kubernetes": executor},
        default_executor="kubernetes",
        registry=registry,
        retry_delay=0.05,
    )
    return engine, executor


@pytest.fixture
def env(emulator: Emulator, kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[K8sEnv]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    emulator.scripts.update(SCRIPTS)
    store = Store(tmp_path / "home" / "polynb.db")
    registry = ComponentRegistry()
    engine, executor = make_engine(emulator, kubeconfig, store, registry, "engine-1")
    events: list[EngineEvent] = []
    cond = threading.Condition()

    def listen(event: EngineEvent) -> None:
        with cond:
            events.append(event)
            cond.notify_all()

    engine.subscribe(listen)
    engine.start()
    k8s_env = K8sEnv(emulator, store, engine, executor, registry, events, cond)
    try:
        yield k8s_env
    finally:
        k8s_env.engine.shutdown(stop_running=True)
        store.close()


def job(name: str, image: str, extra: str = "") -> str:
    return f"""\
  - name: {name}
{textwrap.indent(textwrap.dedent(extra), "    ")}    component:
      name: {name}
      run: {{kind: job, container: {{image: {image}, command: [python, train.py]}}}}
"""


def tensorboard(image: str = "emu/hold", extra: str = "") -> str:
    return f"""\
  - name: tensorboard
    events: [{{ref: ops.experiment, kinds: [run_status_running]}}]
    params: {{uuid: {{ref: ops.experiment, value: globals.uuid, contextOnly: true}}}}
{textwrap.indent(textwrap.dedent(extra), "    ")}    component:
      name: tensorboard
      run:
        kind: service
        ports: [6006]
        container: {{image: {image}, command: [tensorboard, "--port={{{{ globals.ports[0] }}}}"]}}
"""


def dag(*ops: str) -> str:
    return "version: 1.1\nkind: component\nname: pipeline\nrun:\n  kind: dag\n  operations:\n" + "".join(ops)


def test_tensorboard_starts_while_the_experiment_runs(env: K8sEnv) -> None:
    uuid = env.run(dag(job("experiment", "emu/hold"), tensorboard()))
    ops = env.ops(uuid)
    tb, experiment = ops["tensorboard"].uuid, ops["experiment"].uuid
    env.wait_event(lambda e: e.run_uuid == tb and e.kind == "run_status_running")
    assert env.store.get_run(experiment).status == Status.RUNNING
    assert env.emulator.objects("services")[0]["metadata"]["name"] == f"svc-{tb[:12]}"
    env.emulator.finish(env.pod(experiment))
    assert env.wait(uuid) == "succeeded"
    wait_for(lambda: env.store.get_run(tb).url, env.emulator, what="the service URL")
    assert env.store.get_run(tb).url == f"http://svc-{tb[:12]}.default.svc:6006/"
    env.engine.stop(tb)
    assert env.wait(uuid, include_services=True) == "succeeded"
    assert env.store.get_run(tb).status == Status.STOPPED


def test_tensorboard_is_skipped_when_the_image_never_comes(env: K8sEnv) -> None:
    uuid = env.run(dag(job("experiment", "emu/nopull"), tensorboard()))
    assert env.wait(uuid, include_services=True) == "failed"
    ops = env.ops(uuid)
    assert (ops["experiment"].status, ops["experiment"].reason) == (Status.FAILED, "ImagePullBackOff")
    assert "run_status_running" not in env.kinds(ops["experiment"].uuid)
    assert ops["tensorboard"].status == Status.SKIPPED
    assert "experiment" in (ops["tensorboard"].message or "")
    wait_for(lambda: not env.emulator.objects("jobs"), env.emulator, what="the stuck Job deleted")


def test_outputs_flow_to_the_next_op(env: K8sEnv) -> None:
    uuid = env.run(dag(job("train", "emu/ok"), job("evaluate", "emu/ok", "dependencies: [train]\n")))
    assert env.wait(uuid) == "succeeded"
    ops = env.ops(uuid)
    assert ops["train"].outputs == {"loss": 0.125}
    assert list(env.executor.logs(ops["train"].uuid)) == ["training", "done"]


def test_hooks_run_as_their_own_jobs(env: K8sEnv) -> None:
    env.registry.register(
        "notify",
        Component.model_validate(
            {"name": "notify", "run": {"kind": "job", "container": {"image": "emu/ok", "command": ["notify"]}}}
        ),
    )
    uuid = env.run(dag(job("train", "emu/fail", "hooks: [{hubRef: notify, trigger: failed}]\n")))
    assert env.wait(uuid) == "failed"
    train = env.ops(uuid)["train"]
    assert "RuntimeError: diverged" in (train.message or "")
    hooks = env.store.hooks_of(train.uuid)
    assert [h.status for h in hooks] == [Status.SUCCEEDED]
    names = sorted(j["metadata"]["annotations"]["polynb.io/name"] for j in env.emulator.objects("jobs"))
    assert names == ["train", "train-notify"]


def test_retries_are_new_attempts(env: K8sEnv) -> None:
    uuid = env.run(dag(job("flaky", "emu/fail", "termination: {maxRetries: 1}\n")))
    assert env.wait(uuid) == "failed"
    flaky = env.ops(uuid)["flaky"]
    assert "run_status_retrying" in env.kinds(flaky.uuid)
    attempts = sorted(j["metadata"]["labels"]["polynb.io/attempt"] for j in env.emulator.objects("jobs"))
    assert attempts == ["1", "2"]


def test_timeout_stops_the_job(env: K8sEnv) -> None:
    uuid = env.run(dag(job("slow", "emu/hold", "termination: {timeout: 1}\n")))
    assert env.wait(uuid) == "failed"
    slow = env.ops(uuid)["slow"]
    assert (slow.status, slow.reason) == (Status.FAILED, "Timeout")
    wait_for(lambda: not env.emulator.objects("pods"), env.emulator, what="the pods deleted")


def test_stopping_the_dag(env: K8sEnv) -> None:
    uuid = env.run(dag(job("a", "emu/hold"), job("b", "emu/ok", "dependencies: [a]\n")))
    a = env.ops(uuid)["a"].uuid
    env.wait_event(lambda e: e.run_uuid == a and e.kind == "run_status_running")
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped"
    assert {r.name: r.status for r in env.ops(uuid).values()} == {"a": Status.STOPPED, "b": Status.STOPPED}


def test_ttl_cleans_up(env: K8sEnv) -> None:
    uuid = env.run(dag(job("short", "emu/ok", "termination: {ttl: 0}\n")))
    assert env.wait(uuid) == "succeeded"
    wait_for(lambda: not env.emulator.objects("jobs"), env.emulator, what="cleanup after ttl")


def test_reattach_after_an_engine_restart(env: K8sEnv, kubeconfig: Path) -> None:
    uuid = env.run(dag(job("long", "emu/hold")))
    long_run = env.ops(uuid)["long"].uuid
    env.wait_event(lambda e: e.run_uuid == long_run and e.kind == "run_status_running")
    env.engine.shutdown(stop_running=False)  # the kernel restarts; the job keeps running
    assert env.emulator.objects("jobs")
    env.engine, env.executor = make_engine(env.emulator, kubeconfig, env.store, env.registry, "engine-2")
    env.engine.start()
    env.emulator.finish(env.pod(long_run))
    assert env.wait(uuid) == "succeeded"
    assert env.kinds(long_run).count("run_status_running") == 1  # nothing replayed twice


def tensorboard_reading(extra: str = "") -> str:
    """A TensorBoard that links the experiment's outputs (the hub component's ``tensorboard`` init)."""
    return f"""\
  - name: tensorboard
    events: [{{ref: ops.experiment, kinds: [run_status_running]}}]
    params: {{uuids: {{ref: ops.experiment, value: globals.uuid}}}}
{textwrap.indent(textwrap.dedent(extra), "    ")}    component:
      name: tensorboard
      inputs: [{{name: uuids, type: str}}]
      run:
        kind: service
        ports: [6006]
        init: [{{tensorboard: {{uuids: "{{{{ uuids }}}}"}}}}]
        container: {{image: emu/hold, command: [tensorboard]}}
"""


def test_reading_another_runs_artifacts_without_a_claim_is_refused_before_anything_exists(env: K8sEnv) -> None:
    env.emulator.settle()
    env.emulator.reset_counts()
    with pytest.raises(K8sSubmitError) as exc:
        env.run(dag(job("experiment", "emu/hold"), tensorboard_reading()))
    message = str(exc.value)
    assert "op 'tensorboard': init tensorboard" in message
    assert "--k8s-artifacts-claim" in message and "artifacts_claim" in message
    assert env.store.list_runs() == []  # nothing half-submitted
    assert env.emulator.counts()["create"] == 0


def test_with_an_artifacts_claim_the_same_dag_is_accepted(env: K8sEnv, kubeconfig: Path) -> None:
    spec = load_text(textwrap.dedent(dag(job("experiment", "emu/hold"), tensorboard_reading())))
    pipeline = build_pipeline(spec, params={}, registry=env.registry, base_dir=Path.cwd())
    claimed = KubernetesExecutor(KubernetesSettings(kubeconfig=str(kubeconfig), artifacts_claim="shared-artifacts"))
    try:
        check_submission(claimed, pipeline)  # no refusal: the runs share the claim
        assert claimed.config.artifacts_claim == "shared-artifacts"
    finally:
        claimed.shutdown()


def test_the_hubs_jupyterlab_is_refused_on_kubernetes_with_the_reason(env: K8sEnv) -> None:
    env.emulator.settle()
    env.emulator.reset_counts()
    lab = "    - {name: lab, hubRef: jupyterlab}\n"
    text = "version: 1.1\nkind: component\nname: study\nrun:\n  kind: dag\n  operations:\n" + lab
    with pytest.raises(RuntimeError, match="op lab: the hub's `jupyterlab` runs on the local executor only") as exc:
        env.run(text)
    assert "no image with JupyterLab" in str(exc.value)
    assert env.store.list_runs() == []  # nothing half-submitted
    assert env.emulator.counts()["create"] == 0


def test_an_unschedulable_pod_and_a_failing_pull_are_recorded_with_the_clusters_message(env: K8sEnv) -> None:
    # The executor reports them (`unschedulable`, `warning`) while the run is scheduled or starting: the engine
    # records them, with the scheduler's or the kubelet's message, instead of dropping them as "behind".
    gpu = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    environment = json.dumps({"annotations": {SCRIPT_ANNOTATION: json.dumps({"unschedulable": gpu})}})
    big_job = f"""\
  - name: big
    component:
      name: big
      run: {{kind: job, environment: {environment}, container: {{image: emu/hold, command: [python, train.py]}}}}
"""
    uuid = env.run(dag(big_job, job("pull", "emu/nopull")))
    ops = env.ops(uuid)
    big, pull = ops["big"].uuid, ops["pull"].uuid
    env.wait_event(lambda e: e.run_uuid == big and e.kind == "run_status_unschedulable")
    assert (env.store.get_run(big).status, env.store.get_run(big).message) == (Status.UNSCHEDULABLE, gpu)
    # (an op's end is waited for by its event: the engine's wait takes top-level runs)
    env.wait_event(lambda e: e.run_uuid == pull and e.kind == "run_status_failed")
    assert "run_status_warning" in env.kinds(pull)
    env.engine.stop(big)
    assert env.wait(uuid) == "failed"
    assert env.store.get_run(big).status == Status.STOPPED
