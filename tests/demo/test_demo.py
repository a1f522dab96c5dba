"""``make demo``: the seed pipeline end to end with the real TensorBoard, and the scalar writer it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from polynb.demo.app import polynb_command
from polynb.examples.tbwriter import ScalarWriter, crc32c
from polynb.lifecycle import FINAL, Status
from polynb.store import Store

DEMO_GUARD = 240.0
"""Deadlock guard for the whole demo (it takes about max-seconds plus TensorBoard's start-up)."""


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


def test_tensorboard_reads_what_the_scalar_writer_writes(tmp_path: Path) -> None:
    with ScalarWriter(tmp_path) as writer:
        for step, value in enumerate([1.0, 0.5, -0.25]):
            writer.add_scalar("loss", value, step * 10)
    events = list(EventFileLoader(str(writer.path)).Load())
    assert events[0].file_version == "brain.Event:2"
    scalars = [(e.step, v.tag, v.tensor.float_val[0]) for e in events[1:] for v in e.summary.value]
    assert scalars == [(0, "loss", 1.0), (10, "loss", 0.5), (20, "loss", -0.25)]


@pytest.mark.slow
def test_the_seed_pipeline_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "POLYNB_HOME": str(home)}
    # A budget long enough for TensorBoard to start on a busy machine while the experiment still trains.
    result = subprocess.run(
        [sys.executable, "-m", "polynb.demo", "--json", "--no-live", "--max-seconds", "20"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_GUARD,
    )
    findings = json.loads(result.stdout)
    assert result.returncode == 0, result.stderr
    assert findings["ok"], findings["checks"]
    board = findings["tensorboard"]
    assert board["served"]
    assert board["experiment_status_when_served"] == "running"  # served while the experiment trained
    assert {"loss", "accuracy"} <= {tag for tags in board["scalar_tags"].values() for tag in tags}
    assert board["points"] > 0
    (hook,) = findings["hook"]["runs"]
    assert hook["status"] == "succeeded"
    report = findings["hook"]["report"]
    assert report["run"]["name"] == "experiment"
    assert report["run"]["status"] == "succeeded"
    assert {"loss", "accuracy", "epochs"} <= set(report["run"]["outputs"])
    assert findings["tensorboard_status"] == "stopped"
    assert "TensorBoard is up: http://127.0.0.1:" in result.stderr
    with Store(home / "polynb.db") as store:
        runs = store.list_runs()
        assert all(r.status in FINAL for r in runs)
        experiment = next(r for r in runs if r.name == "experiment")
        assert any((home / "artifacts" / experiment.uuid / "outputs" / "tensorboard").iterdir())
        assert "done:" in (home / "artifacts" / experiment.uuid / "logs" / "main.log").read_text()
    assert findings["artifacts"]["experiment"] == str(home / "artifacts" / experiment.uuid)


def test_the_commands_it_suggests_are_typeable_without_an_activated_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").touch()
    (venv / "polynb").touch(mode=0o755)
    monkeypatch.setattr(sys, "executable", str(venv / "python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert polynb_command() == ".venv/bin/polynb"  # make demo does not activate .venv
    monkeypatch.setenv("PATH", str(venv))
    assert polynb_command() == "polynb"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert polynb_command() == str(venv / "polynb")


GATED = """
version: 1.1
kind: component
name: gated
run:
  kind: dag
  operations:
    - name: gate
      component:
        run: {kind: job, container: {command: [sh, -c, "while [ ! -e GATE ]; do sleep 0.05; done"]}}
"""

NOT_THE_SEED = """
version: 1.1
kind: component
name: quick
inputs:
  - {name: max_seconds, type: float, isOptional: true, value: 1}
  - {name: report_url, type: str, isOptional: true, value: ""}
run: {kind: job, container: {command: ["true"]}}
"""


def test_the_demo_leaves_alone_a_run_whose_polynb_run_was_killed(tmp_path: Path) -> None:
    env = {**os.environ, "POLYNB_HOME": str(tmp_path / "home")}
    gate = tmp_path / "gate-open"
    (tmp_path / "gated.yaml").write_text(GATED.replace("GATE", str(gate)))
    (tmp_path / "quick.yaml").write_text(NOT_THE_SEED)
    killed = subprocess.Popen(
        [sys.executable, "-m", "polynb.cli", "run", "-f", "gated.yaml"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + DEMO_GUARD
        while _op_status(tmp_path / "home", "gate") != Status.RUNNING:
            assert time.monotonic() < deadline, "deadlock guard: the gate op never ran"
            time.sleep(0.05)
    finally:
        killed.kill()
        killed.wait()
    # The demo's engine adopts the orphan at start; at its end it must not stop it.
    demo = subprocess.run(
        [sys.executable, "-m", "polynb.demo", "-f", "quick.yaml", "--no-live"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEMO_GUARD,
    )  # fmt: skip
    assert "quick succeeded" in demo.stdout, demo.stderr
    assert _op_status(tmp_path / "home", "gate") == Status.RUNNING
    gate.touch()
    attached = subprocess.run(
        [sys.executable, "-m", "polynb.cli", "attach", "gated"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEMO_GUARD,
    )  # fmt: skip
    assert attached.returncode == 0, attached.stderr
    assert _op_status(tmp_path / "home", "gate") == Status.SUCCEEDED


def _op_status(home: Path, name: str) -> Status | None:
    if not (home / "polynb.db").exists():
        return None
    with Store(home / "polynb.db") as store:
        return next((r.status for r in store.list_runs() if r.name == name), None)
