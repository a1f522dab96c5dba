"""check(): every problem positioned (file, line, column, path), never an exception, and the JSON shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.compiler.check import CheckResult, check
from polynb.spec import check as exported_check

CYCLE = """\
kind: component
name: cyc
run:
  kind: dag
  operations:
    - {name: a, dagRef: job}
    - {name: b, dagRef: job, dependencies: [c]}
    - {name: c, dagRef: job, dependencies: [b, nope]}
  components:
    - {name: job, run: {kind: job, container: {command: [x]}}}
"""

SEED = """\
kind: component
name: seed
run:
  kind: dag
  operations:
    - {name: experiment, dagRef: job}
    - name: tensorboard
      hubRef: tensorboard
      params: {uuids: {ref: ops.experiment, value: globals.uuid}}
      events: [{ref: ops.experiment, kinds: [run_status_running]}]
  components:
    - {name: job, run: {kind: job, container: {command: [x]}}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_graph_errors_point_at_the_op_line(tmp_path: Path) -> None:
    file = write(tmp_path, "cyc.yaml", CYCLE)
    result = check([file])
    assert result.valid is False
    rendered = [str(e) for e in result.errors]
    assert rendered == [
        f"{file}:7:45: run.operations[1].dependencies[0]: the DAG has a cycle: b -> c -> b",
        f"{file}:8:48: run.operations[2].dependencies[1]: `nope` is not an op of this DAG (orphan ref)",
    ]


def test_valid_file_json_shape(tmp_path: Path) -> None:
    result = check([write(tmp_path, "seed.yaml", SEED)])
    assert result.valid and result.errors == []
    assert result.to_json() == {
        "valid": True,
        "errors": [],
        "ops": [
            {"name": "experiment", "upstream": [], "events": [], "trigger": "all_succeeded"},
            {
                "name": "tensorboard",
                "upstream": ["experiment"],
                "events": [{"ref": "ops.experiment", "kinds": ["run_status_running"]}],
                "trigger": "all_succeeded",
            },
        ],
    }
    assert result.pipelines[0].graph.stages == [["experiment"], ["tensorboard"]]


def test_error_json_shape(tmp_path: Path) -> None:
    payload = check([write(tmp_path, "cyc.yaml", CYCLE)]).to_json()
    assert set(payload) == {"valid", "errors", "ops"}
    assert set(payload["errors"][0]) == {"file", "line", "column", "path", "message"}


def test_never_raises_and_collects_every_file(tmp_path: Path) -> None:
    bad_yaml = write(tmp_path, "bad.yaml", "kind: component\nrun: [\n")
    missing = tmp_path / "missing.yaml"
    good = write(tmp_path, "seed.yaml", SEED)
    result = check([bad_yaml, missing, good, "kind: operation\nhubRef: nothing-like-it\n"])
    files = [e.file for e in result.errors]
    assert str(bad_yaml) in files and str(missing) in files and "<string-3>" in files
    assert "cannot read the file" in next(e.message for e in result.errors if e.file == str(missing))
    assert [op.name for op in result.ops] == ["experiment", "tensorboard"]
    assert result.valid is False


def test_errors_in_a_path_ref_file_are_positioned_there(tmp_path: Path) -> None:
    lib = write(tmp_path, "lib.yaml", "kind: component\nname: lib\nrun: {kind: job, container: {comand: [x]}}\n")
    main = write(tmp_path, "main.yaml", "kind: operation\nname: m\npathRef: lib.yaml\n")
    (error,) = check([main]).errors
    assert error.file == str(lib) and error.line == 3 and "comand" in error.path


def test_unsupported_features_are_warnings_for_check(tmp_path: Path) -> None:
    text = SEED.replace(
        "{ref: ops.experiment, kinds: [run_status_running]}", "{ref: ops.experiment, kinds: [connection_git_commit]}"
    )
    result = check([write(tmp_path, "events.yaml", text)])
    assert result.valid is True
    (warning,) = result.warnings
    assert warning.path == "run.operations[1].events[0].kinds[0]" and warning.line == 10
    assert "not supported yet" in warning.message and "polynb watch" in warning.message
    assert result.unsupported == [warning]


def test_a_connection_ref_in_a_dag_with_no_config_file_is_a_warning_not_a_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path))
    monkeypatch.delenv("POLYNB_CONFIG", raising=False)
    text = SEED.replace(
        "{ref: ops.experiment, kinds: [run_status_running]}", "{ref: connections.repo, kinds: [connection_git_commit]}"
    )
    result = check([write(tmp_path, "events.yaml", text)])
    assert result.valid is True and result.unsupported == []
    (warning,) = result.warnings
    assert warning.path == "run.operations[1].events[0].ref" and warning.line == 10
    assert "is not checked: no config file" in warning.message


def test_params_apply_to_the_top_level_component(tmp_path: Path) -> None:
    text = "kind: component\nname: j\ninputs: [{name: lr, type: float}]\nrun: {kind: job, container: {command: [x]}}\n"
    file = write(tmp_path, "j.yaml", text)
    (missing,) = check([file]).errors
    assert (missing.path, missing.line) == ("inputs[0]", 3)
    assert check([file], params={"lr": "0.1"}).valid
    (wrong,) = check([file], params={"lr": "x"}).errors
    assert (wrong.path, wrong.line, wrong.column) == ("-P.lr", 0, 0)


def test_nan_and_infinite_numbers_are_refused_wherever_a_value_is_given(tmp_path: Path) -> None:
    # A run's params are recorded as JSON, which has no such numbers: SQLite refused the rows that held them.
    text = "kind: component\nname: j\ninputs: [{name: lr, type: float}]\nrun: {kind: job, container: {command: [x]}}\n"
    file = write(tmp_path, "j.yaml", text)
    for raw in ("nan", "inf", "-inf"):
        (error,) = check([file], params={"lr": raw}).errors
        assert error.path == "-P.lr" and "is not a finite number" in error.message
    default = text.replace("type: float}", "type: float, value: .inf, isOptional: true}")
    (error,) = check([write(tmp_path, "d.yaml", default)]).errors
    assert (error.path, error.line) == ("inputs[0].value", 3) and "is not a finite number" in error.message
    op = (
        "kind: operation\nname: o\nparams: {lr: .nan}\ncomponent:\n  inputs: [{name: lr, type: float}]\n"
        "  run: {kind: job, container: {command: [x]}}\n"
    )
    (error,) = check([write(tmp_path, "o.yaml", op)]).errors
    assert (error.path, error.line) == ("params.lr", 3) and "is not a finite number" in error.message
    assert check([file], params={"lr": "1e308"}).valid


def test_a_template_that_cannot_render_is_an_error_at_its_field(tmp_path: Path) -> None:
    text = (
        "kind: component\nname: j\ndescription: 'free text {{ not a template'\n"
        "inputs: [{name: lr, type: float, value: 0.1, isOptional: true}]\n"
        "run:\n  kind: job\n  container:\n    command: [x]\n    args: [ARGS]\n"
    )
    syntax, unknown_filter, fine = (
        check([write(tmp_path, f"{n}.yaml", text.replace("ARGS", args))])
        for n, args in enumerate(
            ('"--lr={{ lr }"', '"{{ lr | roundd }}"', '"{{ lr | round }}", "{% if lr %}x{% endif %}"')
        )
    )
    (error,) = syntax.errors
    assert (error.path, error.line, error.column) == ("run.container.args[0]", 9, 12)
    assert "does not parse: unexpected '}'" in error.message
    (error,) = unknown_filter.errors
    assert error.path == "run.container.args[0]" and "no filter named `roundd`; did you mean `round`?" in error.message
    assert fine.valid, fine.errors  # a description is free text, never rendered


def test_short_form_param_errors_point_at_the_param(tmp_path: Path) -> None:
    base = (
        "kind: operation\nname: o\n{params}\ncomponent:\n  inputs: [{{name: n, type: int}}]\n"
        "  run: {{kind: job, container: {{command: [x]}}}}\n"
    )
    (short,) = check([write(tmp_path, "a.yaml", base.format(params="params: {n: many}"))]).errors
    (long,) = check([write(tmp_path, "b.yaml", base.format(params="params: {n: {value: many}}"))]).errors
    assert (short.path, long.path) == ("params.n", "params.n.value")


def test_exported_from_the_package() -> None:
    assert exported_check is check
    assert isinstance(check([]), CheckResult)


def test_example_pipelines_are_valid() -> None:
    folder = Path(__file__).resolve().parents[2] / "notebooks" / "pipelines"
    files = sorted(folder.glob("*.yaml"))
    assert {f.name for f in files} >= {
        "experiment-tensorboard.yaml",
        "hooks-and-conditions.yaml",
        "params-and-outputs.yaml",
    }
    result = check(files)
    assert result.errors == [], "\n".join(map(str, result.errors))
    assert result.warnings == []


def test_a_string_command_is_valid_with_a_warning_that_it_is_one_argument() -> None:
    text = "kind: component\nrun:\n  kind: job\n  container:\n    command: python train.py --lr 0.1\n"
    result = check(text)
    assert result.valid
    [warning] = [w for w in result.warnings if w.path == "run.container.command"]
    assert (warning.line, warning.column) == (5, 14)
    assert "ONE argument" in warning.message and "[python, train.py, --lr]" in warning.message
    # Templates in it change nothing (six of Polyaxon's own fixtures are written so); one whole `{{ }}` may be a list.
    text = "kind: component\nrun:\n  kind: job\n  container:\n    command: train --lr={{ lr }} --loss={{ loss }}\n"
    [warning] = [w for w in check(text).warnings if w.path == "run.container.command"]
    assert "[train, --lr={{ lr }}, --loss={{ loss }}]" in warning.message
    text = 'kind: component\nrun:\n  kind: job\n  container:\n    command: \'{{ cmd | default(["a", "b c"]) }}\'\n'
    assert not [w for w in check(text).warnings if "ONE argument" in w.message]


def test_string_args_of_a_shell_are_the_idiom_and_not_warned() -> None:
    text = "kind: component\nrun:\n  kind: job\n  container:\n    command: [/bin/sh, -c]\n    args: python a.py\n"
    result = check(text)
    assert result.valid and not [w for w in result.warnings if "ONE argument" in w.message]
    text = "kind: component\nrun:\n  kind: job\n  container:\n    command: [python]\n    args: a.py --n 3\n"
    assert [w.path for w in check(text).warnings if "ONE argument" in w.message] == ["run.container.args"]


def test_a_concurrency_the_services_fill_is_a_warning(tmp_path: Path) -> None:
    text = (
        "kind: component\nname: d\nrun:\n  kind: dag\n  concurrency: LIMIT\n  operations:\n"
        "  - {name: web, component: {run: {kind: service, ports: [80], container: {command: [x]}}}}\n"
        "  - {name: client, events: [{ref: ops.web, kinds: [run_status_running]}],"
        " component: {run: {kind: job, container: {command: [x]}}}}\n"
    )
    full = check([write(tmp_path, "one.yaml", text.replace("LIMIT", "1"))])
    assert full.valid  # runnable: the service may be stopped by hand
    (warning,) = full.warnings
    assert (warning.path, warning.line) == ("run.concurrency", 5)
    assert "service holds its slot until it is stopped" in warning.message
    assert check([write(tmp_path, "two.yaml", text.replace("LIMIT", "2"))]).warnings == []
