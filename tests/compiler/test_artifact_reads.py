"""Which ops read another run's artifacts (refused on Kubernetes without an artifacts claim), and the
``environment.restartPolicy`` rule of ``polynb check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from polynb.compiler.artifact_reads import artifact_reads
from polynb.compiler.check import check
from polynb.compiler.pipeline import build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.spec.load import load, load_text

EXAMPLES = Path(__file__).resolve().parents[2] / "notebooks" / "pipelines"


def reads_of(text: str) -> list[str]:
    pipeline = build_pipeline(load_text(text), params={}, registry=ComponentRegistry(), base_dir=Path.cwd())
    return [str(r) for r in artifact_reads(pipeline)]


def test_the_seed_tensorboard_reads_the_experiments_outputs() -> None:
    spec = load(EXAMPLES / "experiment-tensorboard.yaml")
    pipeline = build_pipeline(spec, params={}, registry=ComponentRegistry(), base_dir=EXAMPLES)
    assert [str(r) for r in artifact_reads(pipeline)] == ["op 'tensorboard': init tensorboard"]


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_only_the_tensorboard_example_reads_other_runs(example: str) -> None:
    pipeline = build_pipeline(load(EXAMPLES / example), params={}, registry=ComponentRegistry(), base_dir=EXAMPLES)
    assert bool(artifact_reads(pipeline)) == (example == "experiment-tensorboard.yaml")


def test_a_param_pointing_into_another_runs_folder_is_a_read() -> None:
    text = """
version: 1.1
kind: component
name: p
run:
  kind: dag
  operations:
    - name: train
      component: {name: train, run: {kind: job, container: {image: x, command: [t]}}}
    - name: report
      dependencies: [train]
      params:
        where: {ref: ops.train, value: artifacts.outputs}
        uuid: {ref: ops.train, value: globals.uuid}
      component:
        name: report
        inputs: [{name: where, type: str}, {name: uuid, type: str}]
        run: {kind: job, container: {image: x, command: [r, "{{ where }}"]}}
"""
    assert reads_of(text) == ["op 'report': param where (ops.train: artifacts.outputs)"]


def test_nested_dags_are_looked_into() -> None:
    text = """
version: 1.1
kind: component
name: outer
run:
  kind: dag
  operations:
    - name: inner
      dagRef: inner
  components:
    - name: inner
      run:
        kind: dag
        operations:
          - name: fetch
            component:
              name: fetch
              run: {kind: job, init: [{paths: [other/outputs]}], container: {image: x, command: [f]}}
"""
    assert reads_of(text) == ["op 'inner.fetch': init paths"]


JOB = """
version: 1.1
kind: component
name: x
run:
  kind: {kind}
  environment: {{restartPolicy: {policy}}}
  container: {{image: python:3.11, command: [python, -c, pass]}}
"""


@pytest.mark.parametrize(("kind", "policy", "error"), [
    ("job", "Never", None),
    ("job", "OnFailure", None),
    ("job", "Always", "restartPolicy `Always` is not valid for a job: a Kubernetes Job takes `Never` or `OnFailure`"),
    ("service", "Never", None),
    ("service", "Always", "restartPolicy `Always` cannot be honoured for a service: it runs as a bare Pod"),
])  # fmt: skip
def test_check_refuses_restart_policies_it_cannot_honour(kind: str, policy: str, error: str | None) -> None:
    result = check(JOB.format(kind=kind, policy=policy))
    messages = [e.message for e in result.errors]
    if error is None:
        assert messages == []
    else:
        assert len(messages) == 1 and messages[0].startswith(error)
        assert result.errors[0].path == "run.environment.restartPolicy" and result.errors[0].line == 7
