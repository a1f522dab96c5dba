"""load(): YAML -> models; pydantic errors become positioned SpecErrors in plain words."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from polynb.spec import models
from polynb.spec.errors import SpecError, SpecErrors
from polynb.spec.load import load, load_text
from polynb.spec.suggest import closest, did_you_mean

VALID = """\
version: 1.1
kind: component
name: train-with-live-tensorboard
inputs:
- {name: lr, type: float, value: 0.01, isOptional: true}
run:
  kind: dag
  operations:
  - name: experiment
    dagRef: train
    params:
      lr: {ref: dag, value: inputs.lr}
  - name: tensorboard
    dagRef: tensorboard
    trigger: all_done
    events:
    - ref: ops.experiment
      kinds: [run_status_running]
    hooks:
    - hubRef: notifier
      trigger: failed
  components:
  - name: train
    inputs: [{name: lr, type: float}]
    run:
      kind: job
      container: {image: python:3.11-slim, command: [python, -c], args: ["print({{ lr }})"]}
  - name: tensorboard
    run:
      kind: service
      ports: [6006]
      container: {image: tensorflow/tensorflow, command: [tensorboard]}
"""


def errors_of(text: str) -> list[SpecError]:
    with pytest.raises(SpecErrors) as info:
        load_text(text, "f.yaml")
    return info.value.errors


def only_error(text: str) -> SpecError:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    return errors[0]


def test_valid_file_loads_into_models() -> None:
    comp = load_text(VALID)
    assert isinstance(comp, models.Component)
    assert isinstance(comp.run, models.Dag)
    experiment, tensorboard = comp.run.operations
    assert experiment.dag_ref == "train"
    assert experiment.params is not None and experiment.params["lr"].ref == "dag"
    assert tensorboard.trigger is models.TriggerPolicy.ALL_DONE
    assert tensorboard.events is not None
    assert tensorboard.events[0].kinds == [models.EventKind.RUN_STATUS_RUNNING]
    assert tensorboard.hooks is not None and tensorboard.hooks[0].trigger is models.HookTrigger.FAILED
    assert comp.run.components is not None
    assert isinstance(comp.run.components[1].run, models.Service)


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "dag.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load(path) == load_text(VALID)


def test_unreadable_file_is_a_spec_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecErrors) as info:
        load(missing)
    [error] = info.value.errors
    assert (error.file, error.line, error.column) == (str(missing), 0, 0)
    assert error.message.startswith("cannot read the file")


def test_errors_carry_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: component\nfoo: 1\n", encoding="utf-8")
    with pytest.raises(SpecErrors) as info:
        load(path)
    assert str(info.value.errors[0]).startswith(f"{path}:2:1: foo: ")


def test_misspelled_key_did_you_mean() -> None:
    text = VALID.replace("    trigger: all_done\n", "    dependecies: [experiment]\n")
    error = only_error(text)
    assert (error.line, error.column, error.path) == (15, 5, "run.operations[1].dependecies")
    assert error.message == "unexpected key 'dependecies'; did you mean 'dependencies'?"


def test_misspelled_event_kind_did_you_mean() -> None:
    error = only_error(VALID.replace("[run_status_running]", "[run_status_runing]"))
    assert (error.line, error.column, error.path) == (18, 15, "run.operations[1].events[0].kinds[0]")
    assert error.message == "'run_status_runing' is not an event kind; did you mean 'run_status_running'?"


def test_trigger_policy_and_hook_trigger() -> None:
    text = VALID.replace("trigger: all_done", "trigger: al_done").replace("trigger: failed", "trigger: running")
    first, second = errors_of(text)
    assert (first.line, first.path) == (15, "run.operations[1].trigger")
    assert first.message == "'al_done' is not a trigger policy; did you mean 'all_done'?"
    assert (second.line, second.column, second.path) == (21, 16, "run.operations[1].hooks[0].trigger")
    assert second.message.startswith("'running' is not a hook trigger; expected one of succeeded, failed")


def test_unknown_top_level_key() -> None:
    error = only_error("kind: component\nrun: {kind: job, container: {image: a}}\ninptus: []\n")
    assert (error.line, error.column, error.path) == (3, 1, "inptus")
    assert error.message == "unexpected key 'inptus' at the top level of a Polyaxonfile; did you mean 'inputs'?"


def test_expected_integer() -> None:
    error = only_error("kind: component\nrun: {kind: job, container: {image: a}}\ntermination:\n  maxRetries: abc\n")
    assert (error.line, error.column, error.path) == (4, 15, "termination.maxRetries")
    assert error.message == "expected an integer, got 'abc'"


def test_missing_required_field_points_at_the_parent() -> None:
    error = only_error(VALID.replace("    - hubRef: notifier\n      trigger", "    - trigger"))
    assert (error.line, error.column, error.path) == (20, 7, "run.operations[1].hooks[0].hubRef")
    assert error.message == "missing required field 'hubRef'"


def test_run_kind_typo_names_the_kind_field() -> None:
    error = only_error("kind: component\nrun:\n  kind: jbo\n  container: {image: a}\n")
    assert (error.line, error.column, error.path) == (3, 9, "run.kind")
    assert error.message == "'jbo' is not a run kind; did you mean 'job'?"


def test_missing_run_kind() -> None:
    error = only_error("kind: component\nrun:\n  container: {image: a}\n")
    assert (error.line, error.column, error.path) == (2, 1, "run.kind")
    assert error.message.startswith("missing required field 'kind' (one of job, service, dag")


def test_discriminated_union_reports_only_the_matching_branch() -> None:
    error = only_error("kind: component\nrun:\n  kind: service\n  container: {image: a}\n  ports: [http]\n")
    assert (error.line, error.column, error.path) == (5, 11, "run.ports[0]")
    assert error.message == "expected an integer, got 'http'"


def test_plain_union_gives_one_error() -> None:
    text = "kind: component\nrun:\n  kind: job\n  container:\n    image: a\n    resources: {limits: {cpu: [1]}}\n"
    error = only_error(text)
    assert error.path == "run.container.resources.limits.cpu"
    assert error.message == "expected a string, an integer or a number, got a list"


def test_union_branch_that_went_deepest_wins() -> None:
    text = "kind: component\nrun:\n  kind: job\n  container: {image: a}\n  init:\n  - artifacts: {files: [[a, 1]]}\n"
    error = only_error(text)
    assert (error.line, error.column, error.path) == (6, 29, "run.init[0].artifacts.files[0][1]")
    assert error.message == "expected a string, got 1"


def test_yaml_11_boolean_key() -> None:
    error = only_error("kind: component\nrun: {kind: job, container: {image: a}}\non: [push]\n")
    assert (error.line, error.column, error.path) == (3, 1, "on")
    assert "read as a boolean" in error.message and "quote the key" in error.message


def test_polyaxonfile_kind_typo() -> None:
    error = only_error("kind: componnt\nrun: {kind: job, container: {image: a}}\n")
    assert (error.line, error.column, error.path) == (1, 7, "kind")
    assert error.message == "'componnt' is not a Polyaxonfile kind; did you mean 'component'?"


def test_validator_message_is_kept_without_pydantic_prefix() -> None:
    error = only_error("kind: component\nname: a.b\nrun: {kind: job, container: {image: a}}\n")
    assert (error.line, error.column, error.path) == (2, 7, "name")
    assert error.message.startswith("`a.b` is not a valid name")


def test_several_errors_in_document_order_and_deterministic() -> None:
    text = (
        VALID.replace("[run_status_running]", "[nope]")
        .replace("dagRef: train", "dagref: train")
        .replace("concurrency", "x")
        .replace("ports: [6006]", "ports: [x]")
    )
    first = [str(e) for e in errors_of(text)]
    assert first == [str(e) for e in errors_of(text)]
    assert [e.split(": ")[1] for e in first] == [
        "run.operations[0].dagref",
        "run.operations[1].events[0].kinds[0]",
        "run.components[1].run.ports[0]",
    ]
    assert "did you mean 'dagRef'?" in first[0]


def test_yaml_errors_surface_through_load_text() -> None:
    error = only_error("kind: component\nkind: operation\n")
    assert (error.line, error.column, error.path) == (2, 1, "kind")
    assert error.message.startswith("duplicate key 'kind'")


def test_suggestions() -> None:
    assert closest("dependecies", ["dependencies", "description"]) == "dependencies"
    assert closest("hubref", ["hubRef", "dagRef"]) == "hubRef"
    assert closest("run-status-running", ["run_status_running"]) == "run_status_running"
    assert closest("zzz", ["hubRef"]) is None
    assert did_you_mean("zzz", ["hubRef"]) == ""


def test_the_first_file_a_process_reads_gets_the_same_errors() -> None:
    """The models are built when they first validate: a fresh interpreter's first file (a misspelled key in a
    DAG's op, a typo in its hooks and in a matrix) gets the errors, positions and suggestions a later one gets."""
    text = (
        VALID.replace("    trigger: all_done\n", "    dependecies: [experiment]\n").replace(
            "trigger: failed", "trigger: faild"
        )
        + "matrix: {kind: grid, parms: {lr: {kind: choice, value: [1]}}}\n"
    )
    expected = [str(error) for error in errors_of(text)]
    code = (
        "import sys\nfrom polynb.spec.errors import SpecErrors\nfrom polynb.spec.load import load_text\n"
        "try:\n    load_text(sys.stdin.read(), 'f.yaml')\nexcept SpecErrors as exc:\n"
        "    print('\\n'.join(str(e) for e in exc.errors))\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True, env=env, check=True)
    assert len(expected) == 3
    assert done.stdout.splitlines() == expected


def test_built_everything_ahead_a_process_validates_without_building_and_with_the_same_errors() -> None:
    """``build_everything`` (what the CLI's command server does before it forks): afterwards no file builds a
    model, a section (matrix, hooks) included, and errors, positions and suggestions are those of a lazy build."""
    bad = (
        VALID.replace("    trigger: all_done\n", "    dependecies: [experiment]\n").replace(
            "trigger: failed", "trigger: faild"
        )
        + "matrix: {kind: grid, parms: {lr: {kind: choice, value: [1]}}}\n"
    )
    good = VALID + "matrix: {kind: grid, params: {lr: {kind: choice, value: [1]}}}\n"
    code = (
        "import sys\nfrom polynb.spec.base import build_everything\nfrom polynb.spec.errors import SpecErrors\n"
        "from polynb.spec.load import load_text\nimport pydantic._internal._model_construction as construction\n"
        "build_everything()\nbuilt = []\nreal = construction.complete_model_class\n"
        "construction.complete_model_class = lambda cls, *a, **k: built.append(cls.__name__) or real(cls, *a, **k)\n"
        "good, bad = sys.stdin.read().split('\\n---8<---\\n')\nload_text(good, 'g.yaml')\n"
        "try:\n    load_text(bad, 'f.yaml')\nexcept SpecErrors as exc:\n"
        "    print('\\n'.join(str(e) for e in exc.errors))\nprint('built:', built)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", code], input=good + "\n---8<---\n" + bad, capture_output=True, text=True, env=env,
        check=True,
    )  # fmt: skip
    *errors, built = done.stdout.splitlines()
    assert errors == [str(error) for error in errors_of(bad)]
    assert len(errors) == 3
    assert built == "built: []"
