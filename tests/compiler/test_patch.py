"""runPatch with each patchStrategy, as Polyaxon 2.18 patches a run (expected results computed by Polyaxon's
own ``V1Job.patch`` on the same inputs), and the patched run is what the pipeline runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polynb.compiler.check import check
from polynb.compiler.patch import patch_mapping
from polynb.compiler.pipeline import build_pipeline
from polynb.spec.load import load_text
from polynb.spec.models import Job, PatchStrategy

BASE: dict[str, Any] = {
    "kind": "job",
    "environment": {"nodeSelector": {"a": "1"}, "labels": {"x": "1"}},
    "container": {"image": "p:10", "command": ["python", "t.py"], "env": [{"name": "A", "value": "1"}],
                  "resources": {"limits": {"cpu": "1"}}},
    "init": [{"git": {"url": "https://a"}}],
}  # fmt: skip
PATCH: dict[str, Any] = {
    "environment": {"nodeSelector": {"b": "2"}},
    "container": {"image": "p:11", "env": [{"name": "B", "value": "2"}], "resources": {"requests": {"cpu": "1"}}},
    "init": [{"git": {"url": "https://b"}}],
    "connections": ["c"],
}
A, B = {"name": "A", "value": "1"}, {"name": "B", "value": "2"}
GA, GB = {"git": {"url": "https://a"}}, {"git": {"url": "https://b"}}
BOTH = {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}


@pytest.mark.parametrize(
    ("strategy", "image", "env", "resources", "selector", "init"),
    [
        ("post_merge", "p:11", [A, B], BOTH, {"a": "1", "b": "2"}, [GA, GB]),
        ("pre_merge", "p:10", [B, A], BOTH, {"a": "1", "b": "2"}, [GB, GA]),
        ("replace", "p:11", [B], {"requests": {"cpu": "1"}}, {"b": "2"}, [GB]),
        ("isnull", "p:10", [A], {"limits": {"cpu": "1"}}, {"a": "1"}, [GA]),
    ],
)
def test_each_strategy_patches_as_polyaxon(
    strategy: str, image: str, env: list[Any], resources: Any, selector: Any, init: list[Any]
) -> None:
    out = patch_mapping(BASE, PATCH, PatchStrategy(strategy))
    container = out["container"]
    assert (container["image"], container["env"], container["resources"]) == (image, env, resources)
    assert out["environment"] == {"nodeSelector": selector, "labels": {"x": "1"}}  # untouched keys stay
    assert out["init"] == init
    assert out["connections"] == ["c"]  # unset in the run: every strategy takes the patch's
    assert container["command"] == ["python", "t.py"]
    assert BASE["container"]["image"] == "p:10"  # the component is not modified


OP = """\
kind: operation
name: train
patchStrategy: {strategy}
runPatch:
  container:
    image: python:3.12
    env: [{{name: EXTRA, value: "1"}}]
component:
  run:
    kind: job
    container: {{image: python:3.11, command: [python, train.py], env: [{{name: BASE, value: "1"}}]}}
"""


def test_the_pipeline_runs_the_patched_component() -> None:
    pipeline = build_pipeline(load_text(OP.format(strategy="post_merge")))
    run = pipeline.ops["train"].component.run
    assert isinstance(run, Job) and run.container is not None
    assert run.container.image == "python:3.12"
    assert [e.name for e in run.container.env or ()] == ["BASE", "EXTRA"]
    pre = build_pipeline(load_text(OP.format(strategy="pre_merge"))).ops["train"].component.run
    assert isinstance(pre, Job) and pre.container is not None and pre.container.image == "python:3.11"


def test_a_dag_op_is_patched_too() -> None:
    text = """\
kind: component
run:
  kind: dag
  operations:
    - {name: a, dagRef: job, runPatch: {container: {image: "python:3.12"}}}
    - {name: b, dagRef: job}
  components:
    - {name: job, run: {kind: job, container: {image: "python:3.11", command: [python, t.py]}}}
"""
    ops = build_pipeline(load_text(text)).ops
    images = {name: op.component.run.container.image for name, op in ops.items()
              if isinstance(op.component.run, Job) and op.component.run.container is not None}  # fmt: skip
    assert images == {"a": "python:3.12", "b": "python:3.11"}


@pytest.mark.parametrize(
    ("patch", "path", "fragment"),
    [
        ("runPatch: {foo: 1}", "runPatch.foo", "not a valid `job`"),
        ("runPatch: {container: {imagee: x}}", "runPatch.container.imagee", "unexpected key 'imagee'; did you mean"),
        ("runPatch: {termination: {timeout: 9}}", "runPatch.termination", "write it on the operation itself"),
        ("runPatch: {environment: 'x: y'}", "runPatch.environment", "expected a mapping, got 'x: y'"),
        ("runPatch: {ports: [8080]}", "runPatch.ports", "not a valid `job`"),
        ("runPatch: {kind: service}", "runPatch.kind", "cannot change the run kind"),
        ("patchStrategy: merge\nrunPatch: {}", "patchStrategy", "did you mean 'pre_merge'"),
    ],
)
def test_a_patch_that_breaks_the_run_is_an_error_where_it_is_written(patch: str, path: str, fragment: str) -> None:
    text = (
        "kind: operation\nname: train\n" + patch + "\ncomponent:\n  run:\n    kind: job\n"
        "    container: {image: python:3.11, command: [python, train.py]}\n"
    )
    result = check(text)
    assert not result.valid
    assert any(e.path == path and fragment in e.message and e.line > 0 for e in result.errors), result.errors


def test_what_is_wrong_with_a_patched_key_is_said_at_the_patch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in the component (polynb's own hub file for a hubRef): the user wrote it in `runPatch`."""
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path))
    (tmp_path / "config.yaml").write_text(
        "connections:\n  - {name: data, kind: host_path, schema: {hostPath: /tmp, mountPath: /data}}\n"
    )
    inline = (
        "kind: operation\nname: o\nrunPatch:\n  connections: [nope]\n"
        "component:\n  run: {kind: job, container: {image: python:3.11, command: [echo]}}\n"
    )
    hub = (
        "kind: operation\nname: o\nhubRef: tensorboard:path\nparams: {path: {value: logs}}\n"
        "runPatch:\n  connections: [nope]\n"
    )
    for text, line in ((inline, 4), (hub, 6)):
        problems = [e for e in check(text).errors if "nope" in e.message]
        assert [(e.file, e.path, e.line) for e in problems] == [("<string>", "runPatch.connections[0]", line)], problems
