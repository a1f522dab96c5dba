"""Connection events inside a DAG, from real sources: a git repository (the git CLI, inotify) and a real
S3-compatible server (moto on 127.0.0.1), on the local executor (docs/semantics.md, "Events")."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.schedkit import DEADLOCK_GUARD, PY, Env, dag, describe, job, wait_flag

from polynb.compiler.check import check
from polynb.lifecycle import Status
from polynb.scheduler.connection_waits import watch_name
from polynb.scheduler.stopping import REASON_DAG_STOPPED
from polynb.store.watches import BASELINE, SUBMITTED, WatchLog

from .test_watch import commit, git

REPORT = (
    "import json, os, sys; p = os.environ['POLYAXON_RUN_OUTPUTS_PATH']; "
    "json.dump({'got': sys.argv[1], 'event': json.loads(sys.argv[2])}, open(p + '/outputs.json', 'w'))"
)


def awaiting(name: str, connection: str, kind: str, key: str) -> str:
    """An op that starts on the connection's first event and reports the payload's ``key`` and ``event``."""
    command = json.dumps([PY, "-c", REPORT, f"{{{{ {key} }}}}", "{{ event | tojson }}"])
    return (
        f"name: {name}\n"
        f"events: [{{ref: connections.{connection}, kinds: [{kind}]}}]\n"
        "component:\n"
        f"  name: {name}\n"
        f"  inputs: [{{name: {key}, type: str}}, {{name: event, type: dict}}]\n"
        f"  run: {{kind: job, container: {{command: {command}}}}}"
    )


def configure(env: Env, *connections: dict[str, Any]) -> None:
    home = env.tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(json.dumps({"connections": list(connections)}))


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not predicate():
        assert time.monotonic() < deadline, f"deadlock guard: {what}"
        time.sleep(0.02)


def baseline_taken(env: Env, dag_uuid: str, attempt_seq: int = 0) -> bool:
    return any(e.status == BASELINE for e in WatchLog(env.store).events(watch_name(dag_uuid, attempt_seq)))


def attempt_started(env: Env, dag_uuid: str) -> int:
    """The seq of the DAG's last ``running``: where its current attempt began."""
    return [c.seq for c in env.store.status_history(dag_uuid) if c.status == Status.RUNNING][-1]


def gated_failing_once(tmp: Path) -> list[str]:
    """Waits for ``tmp/go``, then fails the first time it runs and succeeds every time after."""
    flag, marker = tmp / "go", tmp / "failed-once"
    return [
        "sh",
        "-c",
        f'while [ ! -e "{flag}" ]; do sleep 0.05; done; [ -e "{marker}" ] || {{ touch "{marker}"; exit 1; }}',
    ]


def sources_running() -> int:
    return sum(t.name == "polynb-sources" for t in threading.enumerate())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit(path, "first")
    return path


def test_an_op_starts_on_the_first_commit_after_the_dag_started_with_its_sha(env: Env, repo: Path) -> None:
    configure(env, {"name": "repo", "kind": "git", "schema": {"url": str(repo), "revision": "main"}})
    before = sources_running()
    uuid = env.run(dag(job("prepare", [PY, "-c", "pass"]), awaiting("retrain", "repo", "connection_git_commit", "sha")))
    wait_until(lambda: baseline_taken(env, uuid), "the source never took its baseline")
    assert env.ops(uuid)["retrain"].status == Status.CREATED  # the commit already there is not an event
    sha = commit(repo, "new data")
    commit(repo, "later")  # a second commit starts nothing more
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    retrain = env.ops(uuid)["retrain"]
    assert retrain.outputs["got"] == sha
    assert retrain.outputs["event"]["message"] == "new data"
    assert retrain.outputs["event"]["connection"] == "repo"
    events = [e for e in env.store.events(run_uuid=uuid) if e.kind == "connection_git_commit"]
    assert events[0].payload["sha"] == sha and events[0].payload["id"] == sha
    # Nothing polls once nothing waits: the source was disarmed when the op started.
    wait_until(lambda: sources_running() == before, "the source is still armed")


def test_an_op_still_waiting_when_the_dag_is_stopped_is_stopped_like_an_op_awaiting_an_upstream_event(
    env: Env, repo: Path
) -> None:
    configure(env, {"name": "repo", "kind": "git", "schema": {"url": str(repo)}})
    before = sources_running()
    flag = env.tmp / "never"
    board = job("board", [PY, "-c", "pass"], "events: [{ref: ops.serve, kinds: [run_status_succeeded]}]\n")
    uuid = env.run(
        dag(job("serve", wait_flag(flag)), board, awaiting("retrain", "repo", "connection_git_commit", "sha"))
    )
    wait_until(lambda: baseline_taken(env, uuid), "the source never took its baseline")
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped"
    ops = env.ops(uuid)
    # Both pending ops end alike, whatever they wait for: an upstream op's event or a connection's.
    assert {n: (r.status, r.reason) for n, r in ops.items() if n != "serve"} == {
        "board": (Status.STOPPED, REASON_DAG_STOPPED),
        "retrain": (Status.STOPPED, REASON_DAG_STOPPED),
    }
    wait_until(lambda: sources_running() == before, "the source is still armed")


def test_a_dag_stopped_while_its_only_pending_op_waits_for_a_connection_ends_stopped(env: Env, repo: Path) -> None:
    # Every other op succeeded: the DAG is still `stopped` (not `succeeded` with reason Stopped).
    configure(env, {"name": "repo", "kind": "git", "schema": {"url": str(repo)}})
    uuid = env.run(dag(job("prepare", [PY, "-c", "pass"]), awaiting("retrain", "repo", "connection_git_commit", "sha")))
    wait_until(lambda: baseline_taken(env, uuid), "the source never took its baseline")
    wait_until(lambda: env.ops(uuid)["prepare"].status == Status.SUCCEEDED, "prepare never succeeded")
    env.engine.stop(uuid)
    assert env.wait(uuid) == "stopped", describe(env.store, uuid)
    assert env.store.get_run(uuid).status == Status.STOPPED
    retrain = env.ops(uuid)["retrain"]
    assert (retrain.status, retrain.reason) == (Status.STOPPED, REASON_DAG_STOPPED)
    assert "run_status_skipped" not in {e.kind for e in env.store.events(run_uuid=retrain.uuid)}


def test_an_op_starts_on_a_new_object_of_a_bucket(env: Env, moto: Any) -> None:
    fs = moto.fs()
    fs.mkdir("landing")
    fs.pipe("landing/in/old.csv", b"a")
    configure(env, moto.connection("incoming", "s3://landing/in", poll=0.05))
    uuid = env.run(dag(awaiting("load", "incoming", "connection_dataset_version", "key")))
    wait_until(lambda: baseline_taken(env, uuid), "the source never took its baseline")
    fs.pipe("landing/in/new.csv", b"b")
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    load = env.ops(uuid)["load"]
    assert load.outputs["got"] == "in/new.csv"
    assert load.outputs["event"]["path"] == "s3://landing/in/new.csv"
    (row,) = WatchLog(env.store).events(watch_name(uuid), status=SUBMITTED)
    assert row.run_uuid == uuid


@pytest.fixture
def moto() -> Iterator[Any]:
    from support.s3kit import MotoServer

    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_check_reads_connection_refs_of_a_dag_against_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: Path
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path))
    text = dag(awaiting("retrain", "repo", "connection_git_commit", "sha"))
    result = check([text])
    assert [p.message for p in result.errors] == []
    assert any("is not checked: no config file" in p.message for p in result.warnings)
    (tmp_path / "config.yaml").write_text(json.dumps({"connections": [{"name": "repo", "kind": "git",
                                                                       "schema": {"url": str(repo)}}]}))  # fmt: skip
    again = check([text])
    assert again.errors == [] and again.unsupported == [] and again.warnings == []
    wrong = dag(awaiting("retrain", "repo", "connection_registry_image", "tag"))
    assert any("it emits connection_git_commit, not connection_registry_image" in p.message
               for p in check([wrong]).errors)  # fmt: skip
    unknown = dag(awaiting("retrain", "other", "connection_git_commit", "sha"))
    assert any("no connection named other" in p.message for p in check([unknown]).errors)


def test_a_commit_made_while_no_engine_ran_starts_the_op_once_after_a_restart(env: Env, repo: Path) -> None:
    from polynb.executors.local.executor import LocalExecutor
    from polynb.scheduler.engine import Engine

    configure(env, {"name": "repo", "kind": "git", "schema": {"url": str(repo)}})
    uuid = env.run(dag(awaiting("retrain", "repo", "connection_git_commit", "sha")))
    wait_until(lambda: baseline_taken(env, uuid), "the source never took its baseline")
    env.engine.shutdown(stop_running=False)
    sha = commit(repo, "while no engine ran")
    engine = Engine(store=env.store, executors={"local": LocalExecutor(base_dir=env.tmp)})
    engine.start()
    try:
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(env.store, uuid)
    finally:
        engine.shutdown(stop_running=True)
    assert env.ops(uuid)["retrain"].outputs["got"] == sha
    assert [e.payload["sha"] for e in env.store.events(run_uuid=uuid) if e.kind == "connection_git_commit"] == [sha]


def retried(env: Env) -> str:
    """``retrain`` awaits a commit of ``repo``; ``evaluate`` after it fails on the DAG's first attempt only."""
    evaluate = job("evaluate", gated_failing_once(env.tmp), extra="dependencies: [retrain]\n")
    retrain = awaiting("retrain", "repo", "connection_git_commit", "sha")
    return dag(retrain, evaluate, extra="termination: {maxRetries: 1}\n")


def test_a_retried_dag_waits_for_a_commit_after_its_new_attempt_began(env: Env, repo: Path) -> None:
    # The first attempt's commit (recorded on the DAG run) and one made while it ran start nothing in the next.
    configure(env, {"name": "repo", "kind": "git", "schema": {"url": str(repo), "revision": "main"}})
    uuid = env.run(retried(env))
    wait_until(lambda: baseline_taken(env, uuid), "the source never took its baseline")
    first = commit(repo, "first data")
    wait_until(lambda: env.ops(uuid)["evaluate"].status == Status.RUNNING, "evaluate never ran")
    assert env.ops(uuid)["retrain"].outputs["got"] == first
    commit(repo, "while the first attempt ran")
    (env.tmp / "go").touch()  # evaluate fails: the DAG runs again
    wait_until(lambda: env.store.get_run(uuid).attempt == 2, "the DAG was never retried")
    since = attempt_started(env, uuid)
    wait_until(lambda: baseline_taken(env, uuid, since), "the new attempt never took its baseline")
    assert env.ops(uuid)["retrain"].status == Status.CREATED, describe(env.store, uuid)
    sha = commit(repo, "second data")
    assert env.wait(uuid) == "succeeded", describe(env.store, uuid)
    retrain = env.ops(uuid)["retrain"]
    assert (retrain.dag_attempt, retrain.outputs["got"]) == (2, sha)
    recorded = [e for e in env.store.events(run_uuid=uuid) if e.kind == "connection_git_commit"]
    assert [e.payload["sha"] for e in recorded] == [first, sha]
    assert recorded[1].seq > since


def test_an_engine_restarted_in_a_retried_dags_new_attempt_keeps_waiting_for_a_new_commit(env: Env, repo: Path) -> None:
    from polynb.executors.local.executor import LocalExecutor
    from polynb.scheduler.engine import Engine

    configure(env, {"name": "repo", "kind": "git", "schema": {"url": str(repo)}})
    uuid = env.run(retried(env))
    wait_until(lambda: baseline_taken(env, uuid), "the source never took its baseline")
    first = commit(repo, "first data")
    (env.tmp / "go").touch()
    wait_until(lambda: env.store.get_run(uuid).attempt == 2, "the DAG was never retried")
    since = attempt_started(env, uuid)
    wait_until(lambda: baseline_taken(env, uuid, since), "the new attempt never took its baseline")
    env.engine.shutdown(stop_running=False)
    sha = commit(repo, "while no engine ran")
    engine = Engine(store=env.store, executors={"local": LocalExecutor(base_dir=env.tmp)})
    engine.start()
    try:
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(env.store, uuid)
    finally:
        engine.shutdown(stop_running=True)
    assert env.ops(uuid)["retrain"].outputs["got"] == sha
    shas = [e.payload["sha"] for e in env.store.events(run_uuid=uuid) if e.kind == "connection_git_commit"]
    assert shas == [first, sha]
