"""``polynb approve|invalidate``, ``polynb emit`` and ``polynb events`` against a ``polynb run`` in another
process: the events reach the engine running the DAG through its control socket."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clikit import DEADLOCK_GUARD, Cli

from polynb.lifecycle import Status

GATED = """
version: 1.1
kind: component
name: gated
run:
  kind: dag
  operations:
    - name: train
      component:
        run:
          kind: job
          container:
            command: [PY, -c, "from polynb.runtime import tracking; tracking.log_artifact('model.pt', kind='model')"]
    - name: deploy
      isApproved: false
      dependencies: [train]
      component:
        run: {kind: job, container: {command: ["true"]}}
    - name: announce
      events: [{ref: dag, kinds: [project_custom_event]}]
      component:
        run: {kind: job, container: {command: ["true"]}}
""".replace("PY", json.dumps(sys.executable))


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    kit = Cli(tmp_path)
    yield kit
    kit.cleanup()


def test_a_gated_op_waits_for_polynb_approve_and_a_dag_for_polynb_emit(cli: Cli) -> None:
    proc = cli.start("run", "-f", str(cli.write("dag.yaml", GATED)))
    cli.wait_for(lambda s: (op := cli.op(s, "gated", "train")) is not None and op.status == Status.SUCCEEDED,
                 "train succeeded")  # fmt: skip
    with cli.store() as store:
        deploy = cli.op(store, "gated", "deploy")
        assert deploy is not None and deploy.status == Status.CREATED  # waiting for its approval
    result = cli.run("approve", deploy.uuid[:12], "--actor", "alice")
    assert result.returncode == 0, result.stderr
    assert "approved, by the engine running it" in result.stdout
    result = cli.run("emit", "release", "version=3")
    assert result.returncode == 0, result.stderr
    assert "recorded on 1 running DAG" in result.stdout
    proc.communicate(timeout=DEADLOCK_GUARD)
    assert proc.returncode == 0
    with cli.store() as store:
        (dag,) = store.list_runs(top_level_only=True)
        assert {r.name: r.status for r in store.children(dag.uuid)} == {
            "train": Status.SUCCEEDED,
            "deploy": Status.SUCCEEDED,
            "announce": Status.SUCCEEDED,
        }
    code, events = cli.run_json("events", "gated", "--json")
    assert code == 0
    payloads = {e["kind"]: e.get("payload") for e in events}
    assert payloads["run_approved_actor"] == {"actor": "alice"}
    assert payloads["project_custom_event"] == {"name": "release", "version": 3}
    assert payloads["run_new_artifacts"]["kind"] == "model"
    assert payloads["run_new_artifacts"]["path"].endswith("/model.pt")
    text = cli.run("events").stdout  # no RUN: the latest events of every run
    assert "new_artifacts" in text and '"version": 3' in text


def test_invalidate_skips_the_waiting_op(cli: Cli) -> None:
    proc = cli.start("run", "-f", str(cli.write("dag.yaml", GATED)))
    cli.wait_for(lambda s: (op := cli.op(s, "gated", "train")) is not None and op.status == Status.SUCCEEDED,
                 "train succeeded")  # fmt: skip
    result = cli.run("invalidate", "gated")  # the DAG: every op of it waiting for an approval
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("deploy (") and "invalidated, by the engine running it" in result.stdout
    assert cli.run("emit", "release").returncode == 0
    proc.communicate(timeout=DEADLOCK_GUARD)
    with cli.store() as store:
        deploy = cli.op(store, "gated", "deploy")
        assert deploy is not None
        assert (deploy.status, deploy.reason) == (Status.SKIPPED, "Invalidated")


def test_emit_with_no_running_dag_says_nothing_was_recorded(cli: Cli) -> None:
    result = cli.run("emit", "nobody-listens")
    assert result.returncode == 0
    assert "no DAG is running on this host; nothing recorded" in result.stdout
    assert json.loads(cli.run("events", "--json").stdout or "[]") == []
