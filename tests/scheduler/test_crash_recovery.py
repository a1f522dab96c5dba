"""SIGKILL the engine mid-DAG, start a new one on the same store: it finishes the DAG, loses no event and
submits no op twice (every op appends its name to a file when it runs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.recorder import Recorder
from support.schedkit import DEADLOCK_GUARD, build, dag, describe, job, wait_flag

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.store import Store
from polynb.store.paths import artifacts_dir

CHILD = """
import sys, time
from support.schedkit import build
from polynb.executors.local.executor import LocalExecutor
from polynb.scheduler.engine import Engine
from polynb.store import Store

store = Store({db!r})
engine = Engine(store=store, executors={{"local": LocalExecutor(base_dir={tmp!r})}})
engine.start()
uuid = engine.submit(build(open({spec!r}).read()))
print(uuid, flush=True)
time.sleep(3600)
"""


def appending(name: str, log: Path, then: str = "true") -> list[str]:
    return ["sh", "-c", f'echo {name} >> "{log}"; {then}']


def wait_until(predicate: object) -> None:
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "deadlock guard"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_dag_then_restart_finishes_with_no_lost_event_and_no_double_submission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(home))
    log = tmp_path / "submissions.txt"
    release = tmp_path / "release"
    spec = dag(
        job("a", appending("a", log)),
        job("b", appending("b", log, f'while [ ! -e "{release}" ]; do sleep 0.05; done')),
        job("watch", appending("watch", log), extra="events: [{ref: ops.b, kinds: [run_status_running]}]\n"),
        job("c", appending("c", log), extra="dependencies: [b]\n"),
        job("d", appending("d", log), extra="dependencies: [c, a]\n"),
    )
    (tmp_path / "dag.yaml").write_text(spec)
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(CHILD).format(
            db=str(home / "polynb.db"),
            tmp=str(tmp_path),
            spec=str(tmp_path / "dag.yaml"),
        )
    )
    # The child imports polynb from this checkout and ``support.schedkit`` from tests/.
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "POLYNB_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])}
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env, text=True)
    assert child.stdout is not None
    dag_uuid = child.stdout.readline().strip()
    assert len(dag_uuid) == 32
    # Kill the engine once `b` runs (and `watch`, started by b's running event, has been submitted).
    wait_until(lambda: log.exists() and {"a", "b", "watch"} <= set(log.read_text().split()))
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    # b finishes while no engine watches it: the next engine must replay its final status.
    release.touch()

    store = Store(home / "polynb.db")
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)}, registry=ComponentRegistry())
    recorder = Recorder[EngineEvent]()
    engine.subscribe(recorder)
    engine.start()
    try:
        assert engine.wait(dag_uuid, timeout=DEADLOCK_GUARD) == "succeeded"
        ops = {r.name: r for r in store.children(dag_uuid)}
        assert {name: r.status for name, r in ops.items()} == dict.fromkeys(ops, Status.SUCCEEDED)
        # No double submission: each op ran exactly once across both engines.
        assert sorted(log.read_text().split()) == sorted(ops)
        assert all(r.attempt == 1 for r in ops.values())
        # No lost event: every run has one complete, ordered life in the log.
        for record in [store.get_run(dag_uuid), *ops.values()]:
            kinds = [e.kind for e in store.events(run_uuid=record.uuid)]
            assert kinds[0] == "run_status_created"
            assert kinds.count("run_status_created") == 1
            assert kinds.count("run_status_done") == 1
            assert kinds[-2:] == ["run_status_succeeded", "run_status_done"]
            assert kinds.index("run_status_running") < kinds.index("run_status_succeeded")
        seqs = [e.seq for e in store.events(dag_uuid=dag_uuid)]
        assert seqs == sorted(seqs)
        assert len(seqs) == len(set(seqs))
        # The new engine published what it wrote, in seq order.
        seen = [e.seq for e in recorder.events]
        assert seen == sorted(seen)
    finally:
        engine.shutdown()
        store.close()


def test_claimed_run_without_a_handle_is_failed_not_resubmitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    log = tmp_path / "submissions.txt"
    store = Store(tmp_path / "home" / "polynb.db")
    # Build the DAG's runs as an engine that died right after claiming `a` would have left them.
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
    engine.start()
    uuid = engine.submit(build(dag(job("a", appending("a", log)), job("b", ["true"], extra="dependencies: [a]\n"))))
    engine.wait(uuid, timeout=DEADLOCK_GUARD)
    engine.shutdown()
    # Rewrite a copy of the story: a second DAG whose op `a` is claimed but has no handle, owner gone.
    from polynb.store import NewRun

    first = {r.name: r for r in store.children(uuid)}
    dag_record = store.get_run(uuid)
    meta = {**dag_record.meta, "engine": {"host": "gone", "pid": -1, "token": "x"}}
    meta["engine"]["host"] = os.uname().nodename
    new_dag, new_a, new_b = (NewRun(name=n, kind=k) for n, k in (("dag", "dag"), ("a", "job"), ("b", "job")))
    store.create_runs(
        [
            NewRun(name="dag", kind="dag", uuid=new_dag.uuid, meta=meta, executor="local"),
            NewRun(
                name="a", kind="job", uuid=new_a.uuid, dag_uuid=new_dag.uuid, meta=first["a"].meta, executor="local"
            ),
            NewRun(
                name="b", kind="job", uuid=new_b.uuid, dag_uuid=new_dag.uuid, meta=first["b"].meta, executor="local"
            ),
        ]
    )
    store.set_status(new_dag.uuid, Status.RUNNING)
    store.set_status(new_a.uuid, Status.COMPILED)
    assert store.claim(new_a.uuid, executor="local")
    before = log.read_text()

    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
    engine.start()
    try:
        assert engine.wait(new_dag.uuid, timeout=DEADLOCK_GUARD) == "failed"
        a = store.get_run(new_a.uuid)
        assert a.status == Status.FAILED
        assert a.reason == "SubmissionInterrupted"
        assert store.get_run(new_b.uuid).status == Status.UPSTREAM_FAILED
        assert log.read_text() == before
    finally:
        engine.shutdown()
        store.close()


@dataclass
class HandedOver:
    """A DAG (`a`, blocked until `release` exists, then `b`) whose first engine shut down without stopping
    it while `a` runs: the next engine on `store` must finish it."""

    store: Store
    uuid: str
    a_uuid: str
    release: Path
    log: Path


def hand_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HandedOver:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    log = tmp_path / "submissions.txt"
    release = tmp_path / "release"
    store = Store(tmp_path / "home" / "polynb.db")
    first = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
    recorder = Recorder[EngineEvent]()
    first.subscribe(recorder)
    first.start()
    text = dag(
        job("a", appending("a", log, f'while [ ! -e "{release}" ]; do sleep 0.05; done')),
        job("b", appending("b", log), extra="dependencies: [a]\n"),
    )
    uuid = first.submit(build(text))
    a_uuid = next(r.uuid for r in store.children(uuid) if r.name == "a")
    recorder.wait_for(lambda evs: any(e.run_uuid == a_uuid and e.kind == "run_status_running" for e in evs))
    first.shutdown(stop_running=False)
    assert not store.get_run(a_uuid).is_final
    return HandedOver(store, uuid, a_uuid, release, log)


def finish(handed: HandedOver) -> None:
    second = Engine(store=handed.store, executors={"local": LocalExecutor(base_dir=handed.log.parent)})
    second.start()
    try:
        handed.release.touch()
        assert second.wait(handed.uuid, timeout=DEADLOCK_GUARD) == "succeeded"
        assert sorted(handed.log.read_text().split()) == ["a", "b"]  # each op ran once
    finally:
        second.shutdown()


def test_clean_shutdown_without_stopping_hands_runs_to_the_next_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed = hand_over(tmp_path, monkeypatch)
    try:
        finish(handed)
    finally:
        handed.store.close()


def test_an_engine_that_stops_its_runs_at_shutdown_releases_those_it_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel that adopted what a terminal's `polynb run` left running (a service, a DAG handed over) must not
    end it when it exits: it stops the runs it started and releases the others, running, for the next engine."""
    handed = hand_over(tmp_path, monkeypatch)
    try:
        second = Engine(store=handed.store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        second.start()
        assert second.manages(handed.uuid)  # adopted: the first engine released it
        own = second.submit(build(dag(job("mine", ["sleep", "600"]))))
        mine = next(r.uuid for r in handed.store.children(own))
        wait_until(lambda: handed.store.get_run(mine).status == Status.RUNNING)
        second.shutdown()  # stop_running=True, as a kernel's exit by default
        # Its own DAG was stopped, and recorded so before the engine went.
        assert handed.store.get_run(own).status == Status.STOPPED, describe(handed.store, own)
        assert handed.store.get_run(mine).status == Status.STOPPED
        # The adopted one runs on, released: a third engine adopts it and it ends as it would have.
        assert not handed.store.get_run(handed.a_uuid).is_final
        assert handed.store.get_run(handed.uuid).meta.get("engine") is None
        finish(handed)
        assert handed.store.get_run(handed.a_uuid).status == Status.SUCCEEDED
    finally:
        handed.store.close()


def test_a_run_started_before_its_handle_was_recorded_is_re_attached_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash window between the claim and the stored handle: the process may already run. The local
    executor finds it from the run's folder, so the new engine attaches to it (and never starts it again)."""
    handed = hand_over(tmp_path, monkeypatch)
    try:
        handed.store.set_handle(handed.a_uuid, None)  # as if the engine had died before recording it
        finish(handed)
        assert handed.store.get_run(handed.a_uuid).status == Status.SUCCEEDED
    finally:
        handed.store.close()


def test_an_op_that_ended_while_no_engine_ran_keeps_the_times_its_run_folder_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11.3: the op got the attach time as ``finished_at`` (and hooks a duration that long)."""
    handed = hand_over(tmp_path, monkeypatch)
    try:
        status_file = artifacts_dir(handed.a_uuid) / "status.jsonl"
        handed.release.touch()
        wait_until(lambda: '"succeeded"' in status_file.read_text())
        lines = {line["status"]: line for line in map(json.loads, status_file.read_text().splitlines())}
        finish(handed)
        a = handed.store.get_run(handed.a_uuid)
        assert a.started_at is not None and a.finished_at is not None
        assert a.finished_at.timestamp() == pytest.approx(lines["succeeded"]["at"], abs=1e-5)
        assert a.duration == pytest.approx(lines["succeeded"]["at"] - a.started_at.timestamp(), abs=1e-5)
        (done,) = (e for e in handed.store.events(run_uuid=handed.a_uuid) if e.kind == "run_status_succeeded")
        assert done.at == a.finished_at
    finally:
        handed.store.close()


def test_re_attaching_never_moves_a_status_backwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The executor replays every transition it recorded; the run's history must not go running -> starting."""
    handed = hand_over(tmp_path, monkeypatch)
    try:
        finish(handed)
        history = [change.status for change in handed.store.status_history(handed.a_uuid)]
        assert history == [
            Status.CREATED,
            Status.COMPILED,
            Status.QUEUED,
            Status.STARTING,
            Status.RUNNING,
            Status.SUCCEEDED,
        ]
    finally:
        handed.store.close()


def test_a_dag_timeout_still_fires_after_the_dag_changes_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAG's own ``termination.timeout`` counts from its ``running``, across a hand-over to another engine."""
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    store = Store(tmp_path / "home" / "polynb.db")
    try:
        first = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        recorder = Recorder[EngineEvent]()
        first.subscribe(recorder)
        first.start()
        text = dag(job("long", wait_flag(tmp_path / "never")), extra="termination: {timeout: 2}\n")
        uuid = first.submit(build(text))
        long_uuid = next(r.uuid for r in store.children(uuid))
        recorder.wait_for(lambda evs: any(e.run_uuid == long_uuid and e.kind == "run_status_running" for e in evs))
        first.shutdown(stop_running=False)
        assert not store.get_run(uuid).is_final
        second = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path, stop_grace=2.0)})
        second.start()
        try:
            assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "failed"
        finally:
            second.shutdown()
        assert store.get_run(uuid).reason == "Timeout"
        assert store.get_run(long_uuid).status == Status.STOPPED
    finally:
        store.close()


# The engine dies in the window between starting an op's supervisor (the shim) and recording anything of it:
# the first shim spawned SIGKILLs its engine, after noting its pid and, when asked, pausing the shim before it
# wrote a line (so the next engine meets a live shim that has left no trace yet).
KILLED_AT_SPAWN = """
import os, signal, sys
sys.path.insert(0, {helpers!r})
from support.schedkit import build
from polynb.executors.local.executor import LocalExecutor
from polynb.scheduler.engine import Engine
from polynb.store import Store

spawn = LocalExecutor._spawn_shim

def spawn_then_die(self, *args):
    pid, pipe = spawn(self, *args)
    if {pause!r}:
        os.kill(pid, signal.SIGSTOP)
    with open({pid_file!r}, "w") as f:
        f.write(str(pid))
    os.kill(os.getpid(), signal.SIGKILL)

LocalExecutor._spawn_shim = spawn_then_die
engine = Engine(store=Store({db!r}), executors={{"local": LocalExecutor(base_dir={tmp!r})}})
engine.start()
engine.submit(build(open({spec!r}).read()))
signal.pause()
"""


@pytest.mark.parametrize("pause", [False, True], ids=["shim-going-on", "shim-paused-before-its-first-line"])
def test_an_engine_killed_right_after_starting_a_shim_never_fails_or_kills_that_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pause: bool
) -> None:
    """Issue 11.1: the next engine found the live shim without its pid and declared it lost (``ProcessLost:
    the run's supervisor (pid 0) ended``), appending a line whose seq the shim then wrote again."""
    home = tmp_path / "home"
    monkeypatch.setenv("POLYNB_HOME", str(home))
    log = tmp_path / "submissions.txt"
    pid_file = tmp_path / "shim.pid"
    (tmp_path / "dag.yaml").write_text(
        dag(job("a", appending("a", log, "sleep 0.2")), job("b", appending("b", log), extra="dependencies: [a]\n"))
    )
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(KILLED_AT_SPAWN).format(
            helpers=str(Path(__file__).resolve().parents[1]),
            db=str(home / "polynb.db"),
            tmp=str(tmp_path),
            spec=str(tmp_path / "dag.yaml"),
            pid_file=str(pid_file),
            pause=pause,
        )
    )
    env = {**os.environ, "POLYNB_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.run([sys.executable, str(script)], env=env, timeout=DEADLOCK_GUARD, check=False)
    assert child.returncode == -signal.SIGKILL
    shim_pid = int(pid_file.read_text())

    store = Store(home / "polynb.db")
    (dag_record,) = store.list_runs(top_level_only=True)
    a = next(r for r in store.children(dag_record.uuid) if r.name == "a")
    assert (a.status, a.handle) == (Status.QUEUED, None)  # claimed, started, nothing recorded of it
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
    engine.start()
    try:
        if pause:
            os.kill(shim_pid, signal.SIGCONT)
        assert engine.wait(dag_record.uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, dag_record.uuid)
        assert sorted(log.read_text().split()) == ["a", "b"]  # a ran once, and was never failed
        lines = [json.loads(line) for line in (artifacts_dir(a.uuid) / "status.jsonl").read_text().splitlines()]
        assert [(line["seq"], line["status"]) for line in lines] == [(1, "starting"), (2, "running"), (3, "succeeded")]
    finally:
        engine.shutdown()
        store.close()


def test_an_op_whose_timeout_passed_while_no_engine_ran_is_stopped_and_failed_not_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's timer dies with it; the op's shim stops it itself past its timeout, and the next engine records
    a timeout, never retried (maxRetries is for failures, as when the engine's own timer fires)."""
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    pid_file = tmp_path / "op.pid"
    with Store(tmp_path / "home" / "polynb.db") as store:
        first = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        recorder = Recorder[EngineEvent]()
        first.subscribe(recorder)
        first.start()
        text = dag(job("slow", ["sh", "-c", f'echo $$$$ > "{pid_file}"; exec sleep 1000'],
                       extra="termination: {timeout: 1, maxRetries: 2}\n"))  # fmt: skip
        uuid = first.submit(build(text))
        slow = next(r.uuid for r in store.children(uuid) if r.name == "slow")
        recorder.wait_for(lambda evs: any(e.run_uuid == slow and e.kind == "run_status_running" for e in evs))
        first.shutdown(stop_running=False)  # the engine goes; the op runs on
        status_file = artifacts_dir(slow) / "status.jsonl"
        wait_until(lambda: '"failed"' in status_file.read_text())  # its shim stopped it: no engine asked
        pid = int(pid_file.read_text())
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
        second = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
        second.start()
        try:
            assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "failed"
        finally:
            second.shutdown()
        op = store.get_run(slow)
        assert (op.status, op.reason, op.attempt) == (Status.FAILED, "Timeout", 1)
