"""A DAG's own ``termination.maxRetries`` (issue 11 item 4): a failed DAG runs again as a whole, all its ops
anew, and its hooks run once, after the last try; a stopped or timed-out DAG is not retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.recorder import Recorder
from support.schedkit import DEADLOCK_GUARD, PY, Env, component, dag, describe, job, wait_flag

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.store import RunRecord, Store


def appending(name: str, log: Path, then: str = "true") -> list[str]:
    """Appends ``name`` to ``log`` each time the op runs, then runs ``then``."""
    return ["sh", "-c", f'echo {name} >> "{log}"; {then}']


def fails_once(marker: Path) -> str:
    """A shell step that fails the first time (leaving ``marker``) and succeeds every time after."""
    return f'if [ -e "{marker}" ]; then true; else touch "{marker}"; exit 1; fi'


def flaky_dag(tmp: Path, *, retries: int, timeout: int | None = None, extra: str = "") -> str:
    """``prepare`` then ``train``, which fails on the DAG's first attempt only."""
    termination = f"maxRetries: {retries}" + (f", timeout: {timeout}" if timeout else "")
    log = tmp / "ran.txt"
    return dag(
        job("prepare", appending("prepare", log)),
        job("train", appending("train", log, fails_once(tmp / "marker")), extra="dependencies: [prepare]\n"),
        extra=f"termination: {{{termination}}}\n{extra}",
    )


def statuses(env: Env, dag_uuid: str) -> list[Status]:
    return [change.status for change in env.store.status_history(dag_uuid)]


def test_a_failed_dag_runs_again_as_a_whole_and_succeeds_on_its_second_attempt(env: Env) -> None:
    uuid = env.run(flaky_dag(env.tmp, retries=2))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    record = env.store.get_run(uuid)
    assert (record.status, record.attempt, record.dag_attempt) == (Status.SUCCEEDED, 2, 2)
    running, retrying, succeeded = Status.RUNNING, Status.RETRYING, Status.SUCCEEDED
    assert statuses(env, uuid)[-4:] == [running, retrying, running, succeeded]
    # Every op ran again, as a new run of the same name; the first attempt's runs stay, final, for the history.
    assert (env.tmp / "ran.txt").read_text().split() == ["prepare", "train", "prepare", "train"]
    current = env.store.children(uuid)
    every = env.store.children(uuid, all_attempts=True)
    assert [(r.name, r.status, r.dag_attempt) for r in current] == [
        ("prepare", Status.SUCCEEDED, 2),
        ("train", Status.SUCCEEDED, 2),
    ]
    assert [(r.name, r.status, r.dag_attempt) for r in every] == [
        ("prepare", Status.SUCCEEDED, 1),
        ("train", Status.FAILED, 1),
        ("prepare", Status.SUCCEEDED, 2),
        ("train", Status.SUCCEEDED, 2),
    ]
    assert all(r.attempt == 1 for r in every)  # the ops' own retries are another matter
    # The DAG's log keeps both attempts, in order: the new ops are created after the DAG runs again.
    first_train = every[1].uuid
    assert env.seq(first_train, "run_status_failed") < env.seq(uuid, "run_status_retrying")
    assert env.seq(uuid, "run_status_retrying") < env.seq(current[0].uuid, "run_status_created")
    retry = next(c for c in env.store.status_history(uuid) if c.status == Status.RETRYING)
    assert (retry.reason, retry.message) == ("AttemptFailed", "attempt 1 of 3 failed (1 failed, 1 succeeded)")


def test_the_dag_hooks_run_once_after_the_last_try(env: Env) -> None:
    env.registry.register("notify", component("notify", ["true"]))
    hooks = "hooks:\n- {hubRef: notify, trigger: done}\n- {hubRef: notify, trigger: failed}\n"
    uuid = env.run(flaky_dag(env.tmp, retries=1, extra=hooks))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    (hook,) = env.store.hooks_of(uuid)
    assert (hook.hook_trigger, hook.status) == ("done", Status.SUCCEEDED)
    assert env.seq(uuid, "run_status_succeeded") < env.seq(hook.uuid, "run_status_created")
    assert env.seq(uuid, "run_status_retrying") < env.seq(uuid, "run_status_succeeded")


def test_retries_exhausted_the_dag_fails_and_its_failed_hook_runs_once(env: Env) -> None:
    env.registry.register("notify", component("notify", ["true"]))
    log = env.tmp / "ran.txt"
    text = dag(
        job("bad", appending("bad", log, "exit 3")),
        extra="termination: {maxRetries: 2}\nhooks:\n- {hubRef: notify, trigger: failed}\n",
    )
    uuid = env.run(text)
    assert env.wait(uuid) == "failed"
    record = env.store.get_run(uuid)
    assert (record.attempt, record.reason) == (3, "OpsDone")
    assert log.read_text().split() == ["bad"] * 3
    assert env.kinds(uuid).count("run_status_retrying") == 2
    assert env.kinds(uuid).count("run_status_done") == 1
    assert [r.status for r in env.store.children(uuid, all_attempts=True)] == [Status.FAILED] * 3
    assert [h.hook_trigger for h in env.store.hooks_of(uuid)] == ["failed"]


def test_a_stopped_dag_is_not_retried(env: Env) -> None:
    uuid = env.run(dag(job("long", wait_flag(env.tmp / "never")), extra="termination: {maxRetries: 3}\n"))
    long_uuid = env.ops(uuid)["long"].uuid
    env.recorder.wait_for(lambda evs: any(e.run_uuid == long_uuid and e.kind == "run_status_running" for e in evs))
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped"
    assert "run_status_retrying" not in env.kinds(uuid)
    assert env.store.get_run(uuid).attempt == 1
    assert len(env.store.children(uuid, all_attempts=True)) == 1


def test_a_timed_out_dag_is_not_retried(env: Env) -> None:
    text = dag(job("long", wait_flag(env.tmp / "never")), extra="termination: {maxRetries: 3, timeout: 1}\n")
    uuid = env.run(text)
    assert env.wait(uuid) == "failed"
    record = env.store.get_run(uuid)
    assert (record.reason, record.attempt) == ("Timeout", 1)
    assert "run_status_retrying" not in env.kinds(uuid)


@pytest.fixture
def engine_with_delay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], Env]]:
    """Makes the test's engine with the retry delay asked for (the default fixture's is 0.05 s)."""
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    engines: list[Engine] = []

    def make(retry_delay: float) -> Env:
        executor = LocalExecutor(base_dir=tmp_path, stop_grace=2.0)
        registry = ComponentRegistry()
        engine = Engine(store=store, executors={"local": executor}, registry=registry, retry_delay=retry_delay)
        recorder = Recorder[EngineEvent]()
        engine.subscribe(recorder)
        engine.start()
        engines.append(engine)
        return Env(store, engine, executor, registry, recorder, tmp_path)

    try:
        yield make
    finally:
        for engine in engines:
            engine.shutdown(stop_running=True)
        store.close()


def test_a_dag_stopped_between_attempts_ends_stopped_and_never_starts_the_next(
    engine_with_delay: Callable[[float], Env],
) -> None:
    env = engine_with_delay(3600)  # the DAG stays `retrying` until it is stopped
    uuid = env.run(flaky_dag(env.tmp, retries=2))
    env.recorder.wait_for(lambda evs: any(e.run_uuid == uuid and e.kind == "run_status_retrying" for e in evs))
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped"
    record = env.store.get_run(uuid)
    assert (record.reason, record.attempt) == ("StopRequested", 1)
    assert statuses(env, uuid)[-3:] == [Status.RETRYING, Status.STOPPING, Status.STOPPED]
    # The failed attempt is what the DAG shows; no second one was made.
    assert [(r.name, r.status) for r in env.store.children(uuid, all_attempts=True)] == [
        ("prepare", Status.SUCCEEDED),
        ("train", Status.FAILED),
    ]


def test_a_service_still_running_when_the_attempt_fails_is_stopped_before_the_next_starts(env: Env) -> None:
    service = f"""name: board
component:
  name: board
  run:
    kind: service
    ports: [8000]
    container: {{command: ["{PY}", "-m", "http.server", "{{{{ globals.ports[0] }}}}", "--bind", "127.0.0.1"]}}"""
    text = dag(
        service,
        job("train", ["sh", "-c", fails_once(env.tmp / "marker")]),
        extra="termination: {maxRetries: 1}\n",
    )
    uuid = env.run(text)
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    first, second = (r for r in env.store.children(uuid, all_attempts=True) if r.name == "board")
    assert first.status == Status.STOPPED
    stopping = next(c for c in env.store.status_history(first.uuid) if c.status == Status.STOPPING)
    assert stopping.reason == "DagRetrying"
    assert second.dag_attempt == 2
    assert env.seq(first.uuid, "run_status_stopped") < env.seq(second.uuid, "run_status_created")
    env.engine.stop(second.uuid)
    assert env.wait(uuid, include_services=True) == "succeeded"


@pytest.mark.slow
def test_each_attempt_has_its_own_dag_timeout(engine_with_delay: Callable[[float], Env]) -> None:
    """The DAG's timeout counts from the ``running`` of each attempt, not across them: here the first
    attempt fails at once, the retry delay outlasts the timeout, and the second attempt (quick) succeeds."""
    env = engine_with_delay(6)
    uuid = env.run(flaky_dag(env.tmp, retries=1, timeout=5))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    record = env.store.get_run(uuid)
    assert (record.attempt, record.reason) == (2, "OpsDone")


def test_an_op_of_a_retried_dag_keeps_its_own_retries(env: Env) -> None:
    """An op's ``maxRetries`` still retries that op in place, inside one attempt of the DAG."""
    counter = env.tmp / "count"
    script = f'echo x >> "{counter}"; [ "$(wc -l < "{counter}")" -ge 2 ]'
    flaky = job("flaky", ["sh", "-c", script], extra="termination: {maxRetries: 1}\n")
    uuid = env.run(dag(flaky, extra="termination: {maxRetries: 2}\n"))
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    assert env.store.get_run(uuid).attempt == 1
    (op,) = env.store.children(uuid, all_attempts=True)
    assert op.attempt == 2


CHILD = """
import time
from support.schedkit import build
from polynb.executors.local.executor import LocalExecutor
from polynb.scheduler.engine import Engine
from polynb.store import RunRecord, Store

engine = Engine(store=Store({db!r}), executors={{"local": LocalExecutor(base_dir={tmp!r})}}, retry_delay={delay!r})
engine.start()
print(engine.submit(build(open({spec!r}).read())), flush=True)
time.sleep(3600)
"""


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not predicate():
        assert time.monotonic() < deadline, "deadlock guard"
        time.sleep(0.05)


def killed_engine(tmp: Path, spec: str, *, retry_delay: float, until: Callable[[Store, str], bool]) -> str:
    """Run ``spec`` in an engine of another process, SIGKILL it once ``until(store, dag_uuid)``; the DAG's uuid."""
    home = tmp / "home"
    (tmp / "dag.yaml").write_text(spec)
    script = tmp / "child.py"
    script.write_text(
        textwrap.dedent(CHILD).format(
            db=str(home / "polynb.db"), tmp=str(tmp), spec=str(tmp / "dag.yaml"), delay=retry_delay
        )
    )
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "POLYNB_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert child.stdout is not None
        uuid = child.stdout.readline().strip()
        assert len(uuid) == 32
        with Store(home / "polynb.db") as store:
            wait_until(lambda: until(store, uuid))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    return uuid


def finish_in_a_new_engine(tmp: Path, uuid: str) -> list[RunRecord]:
    """A new engine on the same store finishes the DAG (it must succeed); every attempt's ops."""
    store = Store(tmp / "home" / "polynb.db")
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp)}, retry_delay=0.05)
    engine.start()
    try:
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, uuid)
        record = store.get_run(uuid)
        assert (record.attempt, record.reason) == (2, "OpsDone")
        assert [(r.name, r.status) for r in store.children(uuid)] == [
            ("prepare", Status.SUCCEEDED),
            ("train", Status.SUCCEEDED),
        ]
        for op in store.children(uuid, all_attempts=True):
            kinds = [e.kind for e in store.events(run_uuid=op.uuid)]
            assert kinds.count("run_status_created") == kinds.count("run_status_done") == 1, op.name
        return store.children(uuid, all_attempts=True)
    finally:
        engine.shutdown()
        store.close()


@pytest.mark.slow
def test_an_engine_killed_between_attempts_is_followed_by_one_that_starts_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))

    def retrying(store: Store, uuid: str) -> bool:
        return store.get_run(uuid).status == Status.RETRYING

    uuid = killed_engine(tmp_path, flaky_dag(tmp_path, retries=1), retry_delay=3600, until=retrying)
    every = finish_in_a_new_engine(tmp_path, uuid)
    assert [(r.name, r.dag_attempt) for r in every] == [("prepare", 1), ("train", 1), ("prepare", 2), ("train", 2)]
    assert (tmp_path / "ran.txt").read_text().split() == ["prepare", "train", "prepare", "train"]


@pytest.mark.slow
def test_an_engine_killed_during_the_second_attempt_is_followed_by_one_that_adopts_only_its_ops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    log, marker, release = tmp_path / "ran.txt", tmp_path / "marker", tmp_path / "release"
    # `train` fails on the first attempt; on the second it waits for `release`.
    step = (
        f'if [ -e "{marker}" ]; then while [ ! -e "{release}" ]; do sleep 0.05; done; else touch "{marker}"; exit 1; fi'
    )
    spec = dag(
        job("prepare", appending("prepare", log)),
        job("train", appending("train", log, step), extra="dependencies: [prepare]\n"),
        extra="termination: {maxRetries: 1}\n",
    )

    def second_train_runs(store: Store, uuid: str) -> bool:
        ops = store.children(uuid)
        return any(op.name == "train" and op.dag_attempt == 2 and op.status == Status.RUNNING for op in ops)

    uuid = killed_engine(tmp_path, spec, retry_delay=0.05, until=second_train_runs)
    release.touch()
    every = finish_in_a_new_engine(tmp_path, uuid)
    assert [(r.name, r.dag_attempt, r.status) for r in every][:2] == [
        ("prepare", 1, Status.SUCCEEDED),
        ("train", 1, Status.FAILED),
    ]
    assert log.read_text().split() == ["prepare", "train", "prepare", "train"]  # nothing ran twice


def test_a_retrying_dag_no_engine_runs_is_stopped_by_polynb_stop_and_not_retried(
    engine_with_delay: Callable[[float], Env],
) -> None:
    """``polynb stop`` with no live engine records ``stopping``; the engine that finishes the DAG sees it was
    ``retrying`` and ends it ``stopped`` without starting the next attempt."""
    from polynb.scheduler import control

    env = engine_with_delay(3600)
    uuid = env.run(flaky_dag(env.tmp, retries=2))
    env.recorder.wait_for(lambda evs: any(e.run_uuid == uuid and e.kind == "run_status_retrying" for e in evs))
    env.engine.shutdown(stop_running=False)  # releases the DAG: no engine runs it now
    how = control.stop(env.store, env.store.get_run(uuid), executors=lambda: {"local": LocalExecutor(base_dir=env.tmp)})
    assert how == "direct"
    record = env.store.get_run(uuid)
    assert (record.status, record.attempt) == (Status.STOPPED, 1)
    assert len(env.store.children(uuid, all_attempts=True)) == 2
