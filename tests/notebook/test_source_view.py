"""External sources in the run widget's model and drawing: a connection, the custom events sent to the DAG and
the approvals are nodes with edges to the ops awaiting them and rows of markers on the timeline; the comm's
``RunSummary`` carries them and which ops wait for an approval (run by the real engine, a real git repo)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from support.schedkit import DEADLOCK_GUARD, PY, build

from polynb.executors.local.executor import LocalExecutor
from polynb.notebook.model import APPROVAL_SOURCE, EMIT_SOURCE, RunTracker
from polynb.notebook.render import run_html, run_text, timeline_svg
from polynb.notebook.session import summary
from polynb.scheduler.connection_waits import watch_name
from polynb.scheduler.engine import Engine
from polynb.store import Store
from polynb.store.watches import WatchLog

PIPELINE = """
version: 1.1
kind: component
name: external
run:
  kind: dag
  operations:
    - name: retrain
      events: [{{ref: connections.repo, kinds: [connection_git_commit]}}]
      component: {{inputs: [{{name: sha, type: str}}], run: {{kind: job, container: {{command: {cmd}}}}}}}
    - name: deploy
      events: [{{ref: dag, kinds: [project_custom_event]}}]
      component: {{run: {{kind: job, container: {{command: {cmd}}}}}}}
    - name: gate
      isApproved: false
      component: {{run: {{kind: job, container: {{command: {cmd}}}}}}}
"""


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x",
           "HOME": str(repo.parent), "PATH": "/usr/bin:/bin"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def wait_until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + DEADLOCK_GUARD
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"deadlock guard: {what}"
        time.sleep(0.02)


def test_sources_are_nodes_edges_and_timeline_rows_and_reach_the_lab(tmp_path: Path, home: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(json.dumps({"connections": [{"name": "repo", "kind": "git",
                                                                   "schema": {"url": str(repo)}}]}))  # fmt: skip
    store = Store(home / "polynb.db")
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp_path)})
    engine.start()
    try:
        uuid = engine.submit(build(PIPELINE.format(cmd=json.dumps([PY, "-c", "pass"]))))
        wait_until(lambda: bool(WatchLog(store).events(watch_name(uuid))), "no baseline")
        tracker = RunTracker(store, uuid)
        tracker.refresh()
        waiting = tracker.snapshot(time.time())
        assert {(s.name, s.kind, s.awaited_by) for s in waiting.sources} == {
            ("connections.repo", "connection", ("retrain",)),
            (EMIT_SOURCE, "emit", ("deploy",)),
            (APPROVAL_SOURCE, "approval", ("gate",)),
        }
        assert {(e.src, e.dst, e.label) for e in waiting.edges if e.kind == "source"} == {
            ("connections.repo", "retrain", "connection_git_commit"),
            (EMIT_SOURCE, "deploy", "project_custom_event"),
            (APPROVAL_SOURCE, "gate", "approved"),
        }
        lab = summary(waiting)
        assert lab["awaiting_approval"] is True
        assert [op["name"] for op in lab["ops"] if op["awaiting_approval"]] == ["gate"]
        assert {s["name"]: s["events"] for s in lab["sources"]} == {"connections.repo": 0, EMIT_SOURCE: 0,
                                                                     APPROVAL_SOURCE: 0}  # fmt: skip
        git(repo, "commit", "-q", "--allow-empty", "-m", "second")
        engine.emit("project_custom_event", {"name": "ship"})
        engine.approve(tracker.snapshot(time.time()).members[2].uuid)
        assert engine.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded"
    finally:
        engine.shutdown()
    tracker.refresh()
    done = tracker.snapshot(time.time())
    assert {s.name: len(s.markers) for s in done.sources} == {"connections.repo": 1, EMIT_SOURCE: 1, APPROVAL_SOURCE: 1}
    assert not any(op.awaiting_approval for op in done.ops)
    lab = summary(done)
    assert lab["awaiting_approval"] is False
    assert {s["name"]: s["events"] for s in lab["sources"]}["connections.repo"] == 1
    html = run_html(done)
    assert html.count('class="polynb-source"') == 3 and "polynb-edge-source" in html and "external event" in html
    timeline = timeline_svg(done)
    assert timeline.count("polynb-marker-source") == 3 and "connections.repo" in timeline
    assert "connections.repo" not in run_text(done)  # the text (nbval's) stays as it was


@pytest.fixture(autouse=True)
def _no_kernel() -> None:
    """The model is read outside any kernel session."""
