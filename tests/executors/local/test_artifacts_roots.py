"""Each local run lives under the artifacts root recorded for it when it was created (``artifacts_root_of``):
its own folder, its logs read by another executor, and the other runs its init entries read."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support.execkit import MakeExecutor, container, make_op, new_uuid
from support.recorder import UpdateRecorder

from polynb.compiler.types import InitStep


def previous_run(root: Path, name: str) -> str:
    """A finished run under ``root``: its outputs, its TensorBoard folder, and the op the executor keeps."""
    uuid = new_uuid()
    folder = root / uuid
    (folder / "outputs" / "tensorboard").mkdir(parents=True)
    (folder / "outputs" / "model.txt").write_text(f"model of {name}")
    (folder / ".executor").mkdir()
    (folder / ".executor" / "op.json").write_text(json.dumps({"name": name, "uuid": uuid}))
    return uuid


def test_a_run_lives_under_its_recorded_root_and_reads_others_under_theirs(
    make_executor: MakeExecutor, home: Path, tmp_path: Path
) -> None:
    shared, older = tmp_path / "shared", tmp_path / "older"
    roots: dict[str, Path] = {}

    def root_of(uuid: str) -> Path:
        return roots.get(uuid, home / "artifacts")

    default_run = previous_run(home / "artifacts", "before")  # no root recorded: $POLYNB_HOME/artifacts
    older_run = previous_run(older, "older")
    roots[older_run] = older
    uuid = new_uuid()
    roots[uuid] = shared
    executor = make_executor(artifacts_root_of=root_of)
    init = [
        InitStep(kind="tensorboard", spec={"uuids": [default_run, older_run], "useNames": True}),
        InitStep(kind="artifacts", spec={"files": [f"{older_run}/outputs/model.txt"]}),
        InitStep(kind="paths", spec={"paths": [[f"{default_run}/outputs/model.txt", "before.txt"]]}),
    ]
    op = make_op(
        executor, container("sh", "-c", "echo hello; echo out > $POLYAXON_RUN_OUTPUTS_PATH/o"), init=init, uuid=uuid
    )
    assert op.placement.run_artifacts_path == str(shared / uuid)
    recorder = UpdateRecorder()
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded", recorder.seen[-1].message
    folder = shared / uuid
    assert (folder / "outputs" / "o").read_text() == "out\n"
    assert not (home / "artifacts" / uuid).exists()
    assert os.readlink(folder / "tensorboard" / "before") == str(
        home / "artifacts" / default_run / "outputs" / "tensorboard"
    )
    assert os.readlink(folder / "tensorboard" / "older") == str(older / older_run / "outputs" / "tensorboard")
    assert (folder / older_run / "outputs" / "model.txt").read_text() == "model of older"
    assert (folder / "before.txt").read_text() == "model of before"

    # Another executor (another process's: `polynb logs`) finds the run through the same lookup.
    other = make_executor(artifacts_root_of=root_of)
    lines = list(other.logs(uuid))
    assert lines[-1] == "hello"
    assert lines[0].startswith(f"linked {folder / 'tensorboard'}")  # the init logs first
    other.cleanup(uuid)
    assert not (folder / ".executor").exists()
    assert (folder / "outputs" / "o").exists()
