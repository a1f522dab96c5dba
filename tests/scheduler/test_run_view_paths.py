"""What params and conditions read of a run's paths (``globals.run_outputs_path``, ...) follows the artifacts
root recorded for the run, until its placement says where it ran."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.scheduler.compiling import run_view
from polynb.store import NewRun, Store


def test_paths_of_a_run_are_under_its_recorded_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    with Store(tmp_path / "before.db") as store:
        before = store.create_run(NewRun(name="before", kind="job"))
    with Store(tmp_path / "after.db", artifacts_root=tmp_path / "shared") as store:
        after = store.create_run(NewRun(name="after", kind="job"))
    shared = run_view(after).globals
    assert shared["artifacts_path"] == str(tmp_path / "shared")
    assert shared["run_outputs_path"] == str(tmp_path / "shared" / after.uuid / "outputs")
    default = run_view(before).globals
    assert default["run_artifacts_path"] == str(tmp_path / "home" / "artifacts" / before.uuid)
