"""``polynb check``: exit codes, the error line format, ``--json`` and ``--graph``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polynb.cli.app import main

SEED = """\
kind: component
name: seed
inputs: [{name: lr, type: float, value: 0.1, isOptional: true}]
run:
  kind: dag
  operations:
    - {name: experiment, dagRef: job, params: {lr: {ref: dag, value: inputs.lr}}}
    - name: tensorboard
      hubRef: tensorboard
      params: {uuids: {ref: ops.experiment, value: globals.uuid}}
      events: [{ref: ops.experiment, kinds: [run_status_running]}]
    - {name: report, dagRef: job, dependencies: [experiment], params: {lr: 0.2}}
  components:
    - {name: job, inputs: [{name: lr, type: float}], run: {kind: job, container: {command: [x]}}}
"""


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED)
    return path


@pytest.fixture
def cyclic(tmp_path: Path) -> Path:
    path = tmp_path / "cyc.yaml"
    path.write_text(SEED.replace("dependencies: [experiment]", "dependencies: [experiment, report]"))
    return path


def test_valid_exits_0(seed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(seed)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "valid: 1 file, 3 ops"


def test_invalid_prints_one_line_per_error_and_exits_1(cyclic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(cyclic)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"{cyclic}:12:62: run.operations[2].dependencies[1]: the DAG has a cycle: report -> report"
    assert lines[-1] == "invalid: 1 error in 1 file"


def test_several_files(seed: Path, cyclic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(seed), "-f", str(cyclic)]) == 1
    assert main(["check", "-f", str(seed), "-f", str(seed)]) == 0


def test_json(seed: Path, cyclic: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(seed), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is True and payload["errors"] == []
    assert payload["ops"][1] == {
        "name": "tensorboard",
        "upstream": ["experiment"],
        "events": [{"ref": "ops.experiment", "kinds": ["run_status_running"]}],
        "trigger": "all_succeeded",
    }
    assert main(["check", "-f", str(cyclic), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is False
    assert payload["errors"][0] == {
        "file": str(cyclic),
        "line": 12,
        "column": 62,
        "path": "run.operations[2].dependencies[1]",
        "message": "the DAG has a cycle: report -> report",
    }


def test_graph(seed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(seed), "--graph"]) == 0
    out = capsys.readouterr().out
    assert f"seed: dag, 3 ops  ({seed})" in out
    assert "  stage 1: experiment\n  stage 2: tensorboard, report\n" in out
    assert "experiment -> tensorboard  [event: run_status_running, param]" in out
    assert "experiment -> report       [dependency]" in out


def test_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "kind: component\nname: j\ninputs: [{name: lr, type: float}]\nrun: {kind: job, container: {command: [x]}}\n"
    )
    assert main(["check", "-f", str(path)]) == 1
    assert main(["check", "-f", str(path), "-P", "lr=0.1"]) == 0
    capsys.readouterr()
    assert main(["check", "-f", str(path), "-P", "lr=fast"]) == 1
    assert f"{path}:0:0: -P.lr: param `lr` (-P lr=fast): expected a number" in capsys.readouterr().out
    assert main(["check", "-f", str(path), "-P", "lr=0.1", "-P", "epochs=3"]) == 1
    assert "is not an input" in capsys.readouterr().out


def test_usage_errors_exit_2(seed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    assert main(["check", "-f", str(seed), "-P", "no-equals-sign"]) == 2
    assert main([]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_bad_input_never_gives_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00kind: [")
    assert main(["check", "-f", str(binary), "-f", str(tmp_path / "missing.yaml")]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "cannot read the file" in captured.out


def test_unsupported_features_are_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "build.yaml"
    path.write_text(
        "kind: operation\nname: nightly\nbuild: {hubRef: kaniko}\n"
        "component: {run: {kind: job, container: {command: [x]}}}\n"
    )
    assert main(["check", "-f", str(path)]) == 0
    assert f"{path}:3:8: build: warning: `build` is not supported yet" in capsys.readouterr().err


# -- the ways people really get a Polyaxonfile wrong ------------------------------------------------------------

JOB = """\
kind: component
name: one
run:
  kind: job
  container: {command: [x]}
"""


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    assert main(["check", "-f", str(path)]) == 1
    return [line.removeprefix(f"{path}:") for line in capsys.readouterr().out.splitlines()[:-1]]


def test_a_misspelled_required_key_is_one_error_that_names_the_right_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _check(tmp_path, JOB.replace("container:", "containr:"), capsys)
    assert lines == ["5:3: run.containr: unexpected key 'containr'; did you mean 'container'?"]


def test_a_run_kind_at_the_wrong_indentation_says_where_it_belongs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (line,) = _check(tmp_path, "version: 1.1\nkind: job\ncontainer: {command: [x]}\n", capsys)
    assert line.startswith("2:7: kind: 'job' is a run kind, not a Polyaxonfile kind")
    assert "belongs under `run:`" in line
    dedented = SEED.replace(
        "    - {name: job, inputs: [{name: lr, type: float}], run: {kind: job, container: {command: [x]}}}",
        "    - name: job\n      inputs: [{name: lr, type: float}]\n"
        "      run:\n      kind: job\n      container: {command: [x]}",
    )
    (line,) = _check(tmp_path, dedented, capsys)
    assert line.startswith("17:13: run.components[0].kind: 'job' is a run kind")


def test_a_directory_is_not_a_polyaxonfile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-f", str(tmp_path)]) == 1
    assert f"{tmp_path}:0:0: (root): is a directory; expected a Polyaxonfile" in capsys.readouterr().out
