"""``presets``: partial operations from ``$POLYNB_HOME/presets`` (or a hub folder's ``presets/``) merged into an
operation in order, with Polyaxon's ``apply_preset`` semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.compiler.pipeline import analyze_pipeline, build_pipeline
from polynb.spec.errors import SpecErrors
from polynb.spec.load import load_text
from polynb.spec.models import Job, Operation


@pytest.fixture
def presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "presets").mkdir(parents=True)
    monkeypatch.setenv("POLYNB_HOME", str(home))
    monkeypatch.delenv("POLYNB_HUB_PATH", raising=False)
    return home / "presets"


OP = """
kind: operation
name: train
presets: [{names}]
termination: {{maxRetries: 1, timeout: 60}}
component:
  name: train
  run:
    kind: job
    environment: {{nodeSelector: {{pool: cpu}}, labels: {{team: ml}}}}
    container:
      image: python:3.11
      command: [python, train.py]
      env: [{{name: A, value: "1"}}]
"""


def job_of(text: str) -> tuple[Job, Operation]:
    pipeline = build_pipeline(load_text(text))
    op = pipeline.ops["train"]
    run = op.component.run
    assert isinstance(run, Job)
    return run, op.operation


def test_a_preset_patches_the_run_and_the_operation(presets: Path) -> None:
    (presets / "gpu.yaml").write_text(
        "isPreset: true\n"
        "environment: {nodeSelector: {pool: gpu}}\n"
        "runPatch:\n  container: {env: [{name: CUDA, value: '0'}]}\n"
        "termination: {maxRetries: 3}\n"
        "queue: gpus\n"
    )
    run, operation = job_of(OP.format(names="gpu"))
    assert run.environment is not None
    assert run.environment.node_selector == {"pool": "gpu"}  # post_merge: the preset's value wins
    assert run.environment.labels == {"team": "ml"}  # what it does not set stays
    assert run.container is not None
    assert [e.name for e in run.container.env or ()] == ["A", "CUDA"]  # lists: appended
    termination = operation.termination
    assert termination is not None
    assert (termination.max_retries, termination.timeout) == (3, 60)  # key by key
    assert operation.queue == "gpus"


def test_presets_apply_in_order_with_their_own_strategy(presets: Path) -> None:
    (presets / "a.yaml").write_text("termination: {maxRetries: 5}\nenvironment: {nodeSelector: {pool: a}}\n")
    (presets / "b.yml").write_text(
        "patchStrategy: isnull\ntermination: {maxRetries: 9, ttl: 30}\nenvironment: {nodeSelector: {pool: b}}\n"
    )
    run, operation = job_of(OP.format(names="a, b"))  # a comma-separated string, as Polyaxon reads it
    assert run.environment is not None and run.environment.node_selector == {"pool": "a"}  # isnull: only fills
    termination = operation.termination
    assert termination is not None
    assert (termination.max_retries, termination.ttl) == (5, 30)


def test_the_components_presets_apply_when_the_operation_has_none(presets: Path) -> None:
    (presets / "quiet.yaml").write_text("plugins: {collectLogs: true}\n")
    text = (
        OP.format(names="")
        .replace("presets: []\n", "")
        .replace("  name: train\n", "  name: train\n  presets: [quiet]\n")
    )
    _, operation = job_of(text)
    assert operation.plugins is not None and operation.plugins.collect_logs is True


def test_hub_folders_hold_presets_too(presets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "hub"
    (hub / "presets").mkdir(parents=True)
    (hub / "presets" / "team.yaml").write_text("queue: team\n")
    monkeypatch.setenv("POLYNB_HUB_PATH", str(hub))
    _, operation = job_of(OP.format(names="team"))
    assert operation.queue == "team"


def test_a_missing_preset_is_unsupported_here_and_refused_at_run(presets: Path) -> None:
    # Polyaxon keeps presets in its server: a file naming one is valid; polynb cannot apply it, so `run` refuses.
    (problem,) = analyze_pipeline(load_text(OP.format(names="nope"))).problems
    assert problem.severity == "unsupported" and problem.path == ("presets", 0)
    with pytest.raises(SpecErrors) as info:
        build_pipeline(load_text(OP.format(names="nope")))
    (error,) = info.value.errors
    assert error.path == "presets[0]"
    assert "preset `nope`: no nope.yaml in " in error.message and str(presets) in error.message


def test_a_bad_preset_is_reported_in_its_file(presets: Path) -> None:
    (presets / "typo.yaml").write_text("termination:\n  maxRetrie: 2\n")
    (problem,) = analyze_pipeline(load_text(OP.format(names="typo"))).problems  # what `polynb check` prints
    error = problem.located
    assert error is not None and error.file.endswith("typo.yaml") and (error.line, error.column) == (2, 3)
    assert error.path == "termination.maxRetrie" and "did you mean 'maxRetries'" in error.message


def test_what_a_preset_may_not_set_is_refused_with_the_reason(presets: Path) -> None:
    (presets / "sweep.yaml").write_text("matrix: {kind: grid, params: {lr: {kind: choice, value: [1, 2]}}}\n")
    (presets / "badrun.yaml").write_text("runPatch: {container: {imagee: x}}\n")
    with pytest.raises(SpecErrors, match=r"preset `sweep`: `matrix` cannot be set by a preset"):
        build_pipeline(load_text(OP.format(names="sweep")))
    with pytest.raises(SpecErrors, match=r"preset `badrun`: the patched run is not a valid `job`"):
        build_pipeline(load_text(OP.format(names="badrun")))


def test_presets_on_the_ops_of_a_dag(presets: Path) -> None:
    (presets / "gpu.yaml").write_text("environment: {nodeSelector: {pool: gpu}}\n")
    pipeline = build_pipeline(
        load_text(
            """
kind: component
name: pipe
run:
  kind: dag
  operations:
    - {name: a, presets: [gpu], component: {run: {kind: job, container: {image: x, command: [x]}}}}
    - {name: b, component: {run: {kind: job, container: {image: x, command: [x]}}}}
"""
        )
    )
    runs = {name: op.component.run for name, op in pipeline.ops.items()}
    assert isinstance(runs["a"], Job) and runs["a"].environment is not None
    assert runs["a"].environment.node_selector == {"pool": "gpu"}
    assert isinstance(runs["b"], Job) and runs["b"].environment is None
