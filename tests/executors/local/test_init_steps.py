"""Init entries of local runs: file, git, artifacts, paths, tensorboard and container, in order."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from support.execkit import container, make_op, new_uuid
from support.recorder import UpdateRecorder

from polynb.compiler.types import CompiledOp, InitStep
from polynb.executors.local.executor import LocalExecutor
from polynb.executors.local.init_steps import InitError, parse_chmod


def submit(executor: LocalExecutor, op: CompiledOp) -> UpdateRecorder:
    recorder = UpdateRecorder()
    executor.submit(op, recorder)
    recorder.final()
    return recorder


def run_dir(op: CompiledOp) -> Path:
    return Path(op.placement.run_artifacts_path)


def test_init_entries_run_in_order_before_the_main_container(executor: LocalExecutor, workdir: Path) -> None:
    # The first container runs the script the file entry wrote into the run's artifacts folder.
    init = [
        InitStep(kind="file", spec={"filename": "step.sh", "content": "echo file >> order.txt\n", "chmod": "+x"}),
        InitStep(kind="container", container=container("sh", "-c", '"$POLYAXON_RUN_ARTIFACTS_PATH/step.sh"')),
        InitStep(kind="container", container=container("sh", "-c", "echo two >> order.txt", name="two")),
    ]
    op = make_op(executor, container("sh", "-c", "echo main >> order.txt"), init=init)
    recorder = submit(executor, op)
    assert recorder.statuses == ["starting", "running", "succeeded"]
    assert recorder.seen[0].reason == "Initializing"
    assert (workdir / "order.txt").read_text() == "file\ntwo\nmain\n"
    script = run_dir(op) / "step.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    logs = sorted(p.name for p in (run_dir(op) / "logs").iterdir())
    assert logs == ["init-0-file.log", "init-1-container.log", "init-2-container.log", "main.log"]


def test_file_entry_with_a_path_and_an_octal_mode(executor: LocalExecutor) -> None:
    init = [InitStep(kind="file", path="conf", spec={"filename": "a.yaml", "content": "x: 1\n", "chmod": "600"})]
    op = make_op(executor, container("true"), init=init)
    assert submit(executor, op).statuses[-1] == "succeeded"
    target = run_dir(op) / "conf" / "a.yaml"
    assert target.read_text() == "x: 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [("755", 0o644, 0o755), ("0o700", 0o644, 0o700), (755, 0o644, 0o755), ("+x", 0o644, 0o755),
     ("u+x,go-r", 0o644, 0o700), ("a=r", 0o777, 0o444)],
)  # fmt: skip
def test_chmod_values(value: str | int, mode: int, expected: int) -> None:
    assert parse_chmod(value, mode) == expected


def test_a_bad_chmod_is_an_init_error() -> None:
    with pytest.raises(InitError, match="chmod"):
        parse_chmod("+q", 0o644)


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def test_git_entry_clones_a_local_repository_at_a_revision(executor: LocalExecutor, workdir: Path) -> None:
    repo = workdir / "project"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    (repo / "train.py").write_text("v1\n")
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "one", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo).strip()
    (repo / "train.py").write_text("v2\n")
    git("commit", "-q", "-am", "two", cwd=repo)
    # A relative url is a folder beside the notebook (the base folder).
    init = [InitStep(kind="git", spec={"url": "project", "revision": first, "flags": ["--quiet"]})]
    op = make_op(executor, container("true"), init=init)
    recorder = submit(executor, op)
    assert recorder.statuses[-1] == "succeeded", recorder.seen[-1].message
    assert (run_dir(op) / "project" / "train.py").read_text() == "v1\n"


def test_a_failing_init_entry_fails_the_run_and_nothing_after_it_runs(executor: LocalExecutor, tmp_path: Path) -> None:
    init = [
        InitStep(kind="git", spec={"url": str(tmp_path / "no-such-repo")}),
        InitStep(kind="file", spec={"filename": "later.txt", "content": "x"}),
    ]
    op = make_op(executor, container("sh", "-c", "touch main-ran"), init=init)
    final = submit(executor, op).seen[-1]
    assert (final.status, final.reason) == ("failed", "InitFailed")
    assert final.message.startswith("init[0] git: git clone failed (exit code 128)")
    assert "no-such-repo" in final.message  # git's own words, from the entry's log
    assert not (run_dir(op) / "later.txt").exists()
    assert not (run_dir(op).parent / "main-ran").exists()


def test_a_failing_container_entry_names_the_entry(executor: LocalExecutor) -> None:
    init = [
        InitStep(kind="file", spec={"filename": "ok.txt", "content": "x"}),
        InitStep(kind="container", container=container("sh", "-c", "echo broken >&2; exit 4", name="prep")),
    ]
    final = submit(executor, make_op(executor, container("true"), init=init)).seen[-1]
    assert (final.status, final.reason) == ("failed", "InitFailed")
    assert final.message == "init[1] container: exit code 4\nbroken"


def make_previous_run(home: Path, name: str) -> str:
    """A finished run of an earlier op: outputs, a tensorboard folder, and the op the executor keeps."""
    uuid = new_uuid()
    root = home / "artifacts" / uuid
    (root / "outputs" / "tensorboard").mkdir(parents=True)
    (root / "outputs" / "model.txt").write_text(f"model of {name}")
    (root / "outputs" / "tensorboard" / "events.1").write_text("e1")
    (root / ".executor").mkdir()
    (root / ".executor" / "op.json").write_text(json.dumps({"name": name, "uuid": uuid}))
    return uuid


def test_artifacts_entry_copies_files_and_dirs_of_earlier_runs(executor: LocalExecutor, home: Path) -> None:
    previous = make_previous_run(home, "train")
    init = [
        InitStep(
            kind="artifacts",
            spec={"files": [f"{previous}/outputs/model.txt"], "dirs": [f"{previous}/outputs/tensorboard"]},
        )
    ]
    op = make_op(executor, container("true"), init=init)
    assert submit(executor, op).statuses[-1] == "succeeded"
    copied = run_dir(op) / previous / "outputs"
    assert (copied / "model.txt").read_text() == "model of train"
    assert (copied / "tensorboard" / "events.1").read_text() == "e1"


def test_paths_entry_copies_paths_and_from_to_pairs(executor: LocalExecutor, home: Path) -> None:
    previous = make_previous_run(home, "train")
    spec = {"paths": [f"{previous}/outputs/model.txt", [f"{previous}/outputs/tensorboard", "tb"]]}
    op = make_op(executor, container("true"), init=[InitStep(kind="paths", spec=spec, path="inputs")])
    assert submit(executor, op).statuses[-1] == "succeeded"
    assert (run_dir(op) / "inputs" / previous / "outputs" / "model.txt").exists()
    assert (run_dir(op) / "inputs" / "tb" / "events.1").exists()


def test_a_missing_artifact_fails_the_init(executor: LocalExecutor) -> None:
    init = [InitStep(kind="artifacts", spec={"files": ["0" * 32 + "/outputs/nope"]})]
    final = submit(executor, make_op(executor, container("true"), init=init)).seen[-1]
    assert (final.status, final.reason) == ("failed", "InitFailed")
    assert "not found" in final.message


def test_tensorboard_entry_links_the_runs_logdirs_so_live_data_shows(executor: LocalExecutor, home: Path) -> None:
    a, b = make_previous_run(home, "train"), make_previous_run(home, "train")
    spec = {"uuids": f"{a},{b}", "useNames": True, "port": 6006, "pathPrefix": "http://127.0.0.1:6006/"}
    op = make_op(executor, container("true"), init=[InitStep(kind="tensorboard", spec=spec)])
    assert submit(executor, op).statuses[-1] == "succeeded"
    logdir = run_dir(op) / "tensorboard"
    first, second = logdir / "train", logdir / f"train-{b[:8]}"  # same names are told apart
    assert first.is_symlink()
    assert second.is_symlink()
    assert os.readlink(first) == str(home / "artifacts" / a / "outputs" / "tensorboard")
    (home / "artifacts" / a / "outputs" / "tensorboard" / "events.2").write_text("later")
    assert (first / "events.2").read_text() == "later"  # written after the init ran
    script = (run_dir(op) / "start_tensorboard").read_text()
    assert f"'--logdir={logdir}'" in script
    assert "'--port=6006'" in script
    assert "path_prefix" not in script  # a bare "/" prefix is no prefix


def test_tensorboard_entry_names_links_by_uuid_by_default(executor: LocalExecutor, home: Path) -> None:
    a = make_previous_run(home, "train")
    op = make_op(executor, container("true"), init=[InitStep(kind="tensorboard", spec={"uuids": [a]}, path="tb")])
    assert submit(executor, op).statuses[-1] == "succeeded"
    assert (run_dir(op) / "tb" / a / "events.1").read_text() == "e1"


def test_cleanup_removes_what_init_made_but_keeps_logs_and_outputs(executor: LocalExecutor, home: Path) -> None:
    a = make_previous_run(home, "train")
    init = [
        InitStep(kind="tensorboard", spec={"uuids": [a]}),
        InitStep(kind="file", spec={"filename": "conf.txt", "content": "x"}),
    ]
    op = make_op(executor, container("sh", "-c", 'echo 1 > "$POLYAXON_RUN_OUTPUTS_PATH/model"'), init=init)
    assert submit(executor, op).statuses[-1] == "succeeded"
    executor.cleanup(op.uuid)
    root = run_dir(op)
    assert sorted(p.name for p in root.iterdir()) == ["logs", "outputs", "status.jsonl"]
    assert (root / "outputs" / "model").exists()
    assert (home / "artifacts" / a / "outputs" / "tensorboard" / "events.1").exists()  # links, not targets
