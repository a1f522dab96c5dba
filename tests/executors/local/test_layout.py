"""The run folder's names (``layout``): what the bare shim may import, and the order logs are read in."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from support.execkit import container, make_op
from support.recorder import UpdateRecorder

from polynb.compiler.types import InitStep
from polynb.executors.local.executor import PACKAGE_ROOT, LocalExecutor


def test_the_shim_imports_nothing_of_polynb_but_itself_and_the_layout() -> None:
    # The shim starts with every op in `python -I -S`: each module it pulls in is start-up time.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import polynb.executors.local.shim;"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('polynb'))))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, PACKAGE_ROOT], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [
        "polynb",
        "polynb.executors",
        "polynb.executors.local",
        "polynb.executors.local.layout",
        "polynb.executors.local.shim",
    ]


def test_logs_are_the_init_entries_in_order_then_the_main_container(executor: LocalExecutor) -> None:
    init = [InitStep(kind="container", container=container("echo", f"init {i}", name=f"i{i}")) for i in range(11)]
    op = make_op(executor, container("echo", "main"), init=init)
    recorder = UpdateRecorder()
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    # init-10 after init-9: by entry number, not by file name.
    assert list(executor.logs(op.uuid)) == [*(f"init {i}" for i in range(11)), "main"]


def test_an_op_finds_its_outputs_and_tensorboard_folders_and_the_run_keeps_its_op_and_logs(
    executor: LocalExecutor,
) -> None:
    # Made by the shim before the op starts (not by the engine), so the op can write there from its first line.
    check = 'test -d "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard" && echo ready'
    op = make_op(executor, container("sh", "-c", check), name="trainer")
    recorder = UpdateRecorder()
    executor.submit(op, recorder)
    assert recorder.final().status == "succeeded"
    assert list(executor.logs(op.uuid)) == ["ready"]
    run_dir = Path(op.placement.run_artifacts_path)
    recorded = json.loads((run_dir / ".executor" / "op.json").read_text())
    assert (recorded["uuid"], recorded["name"]) == (op.uuid, "trainer")
    # The op's spec holds the env of the connections it names (credentials): its owner's only.
    assert stat.S_IMODE((run_dir / ".executor").stat().st_mode) == 0o700


def test_a_run_that_never_started_its_main_container_still_keeps_its_op(executor: LocalExecutor) -> None:
    # op.json is written once the main container started, or at the end of a run that did not get that far.
    failing_init = [InitStep(kind="container", container=container("false", name="setup"))]
    for op in (
        make_op(executor, container("true"), name="init-failed", init=failing_init),
        make_op(executor, container("no-such-command-here"), name="spawn-failed"),
    ):
        recorder = UpdateRecorder()
        executor.submit(op, recorder)
        assert recorder.final().status == "failed"
        recorded = json.loads((Path(op.placement.run_artifacts_path) / ".executor" / "op.json").read_text())
        assert recorded["name"] == op.name
