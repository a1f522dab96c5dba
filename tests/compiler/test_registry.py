"""Component resolution: dagRef (and alias cycles), inline, run, pathRef, hubRef order, urlRef."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polynb.compiler.registry import HUB_PATH_ENV, ComponentRegistry, ResolutionError, split_hub_ref
from polynb.spec.models import Component, Dag, Operation, parse_polyaxonfile

JOB: dict[str, Any] = {"kind": "job", "container": {"image": "python:3.11", "command": ["python", "x.py"]}}


def component(name: str, **fields: Any) -> Component:
    return Component.model_validate({"name": name, "run": JOB, **fields})


def operation(**fields: Any) -> Operation:
    return Operation.model_validate({"name": "op", **fields})


def dag(components: list[dict[str, Any]]) -> Dag:
    spec = parse_polyaxonfile(
        {
            "kind": "component",
            "run": {"kind": "dag", "operations": [{"name": "a", "run": JOB}], "components": components},
        }
    )
    assert isinstance(spec.run, Dag)
    return spec.run


def test_dag_ref_follows_aliases() -> None:
    d = dag([{"name": "train", "run": JOB}, {"name": "trainer", "dagRef": "train"}])
    resolved = ComponentRegistry().resolve_full(operation(dagRef="trainer"), dag=d)
    assert resolved.component.name == "train" and resolved.dag_index == 0


def test_dag_ref_cycle_is_reported_with_its_path() -> None:
    d = dag([{"name": "trainer", "dagRef": "trainer-latest"}, {"name": "trainer-latest", "dagRef": "trainer"}])
    with pytest.raises(ResolutionError) as info:
        ComponentRegistry().resolve(operation(dagRef="trainer"), dag=d)
    assert info.value.message == "template reference cycle: trainer -> trainer-latest -> trainer"
    assert (info.value.path, info.value.anchor) == (("components", 1, "dagRef"), "dag")


def test_unknown_dag_ref_suggests() -> None:
    d = dag([{"name": "evaluate", "run": JOB}])
    with pytest.raises(ResolutionError, match="did you mean `evaluate`") as info:
        ComponentRegistry().resolve(operation(dagRef="evaluation"), dag=d)
    assert info.value.path == ("dagRef",)
    with pytest.raises(ResolutionError, match="not in a DAG"):
        ComponentRegistry().resolve(operation(dagRef="evaluate"), dag=None)


def test_inline_component_and_inline_run() -> None:
    registry = ComponentRegistry()
    inline = registry.resolve(operation(component={"name": "c", "run": JOB}))
    assert inline.name == "c"
    own = registry.resolve(operation(run=JOB, inputs=[{"name": "lr", "type": "float"}]))
    assert own.run is not None and own.run.kind == "job" and [i.name for i in own.inputs or ()] == ["lr"]


def test_path_ref_is_relative_to_the_referring_file_and_nests(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "inner.yaml").write_text("kind: component\nname: inner\nrun: {kind: job, container: {command: [x]}}\n")
    (lib / "outer.yaml").write_text(
        "kind: component\nname: outer\nrun:\n  kind: dag\n  operations:\n    - {name: i, pathRef: inner.yaml}\n"
    )
    registry = ComponentRegistry()
    outer = registry.resolve_full(operation(pathRef="lib/outer.yaml"), base_dir=tmp_path)
    assert outer.component.name == "outer" and outer.base_dir == lib.resolve()
    assert outer.source is not None and outer.source.endswith("outer.yaml")
    assert isinstance(outer.component.run, Dag)
    inner_op = outer.component.run.operations[0]
    inner = registry.resolve(inner_op, dag=outer.component.run, base_dir=outer.base_dir)
    assert inner.name == "inner"
    with pytest.raises(ResolutionError, match="no such file") as info:
        registry.resolve(operation(pathRef="missing.yaml"), base_dir=tmp_path)
    assert info.value.path == ("pathRef",)


def test_hub_ref_builtin_with_and_without_tag() -> None:
    registry = ComponentRegistry()
    board = registry.resolve(operation(hubRef="tensorboard"))
    assert board.name == "tensorboard" and board.run is not None and board.run.kind == "service"
    assert registry.resolve(operation(hubRef="tensorboard:latest")) is board  # one cached load
    assert registry.resolve(operation(hubRef="webhook")).name == "webhook"
    assert split_hub_ref("tensorboard:v2") == ("tensorboard", "v2")


def test_runtime_registry_shadows_the_builtin_hub() -> None:
    registry = ComponentRegistry()
    mine = component("my-tensorboard")
    registry.register("tensorboard", mine)
    assert registry.resolve(operation(hubRef="tensorboard")) is mine
    assert registry.resolve(operation(hubRef="tensorboard:latest")) is mine
    registry.register("train:v2", component("train-v2"))
    assert registry.resolve(operation(hubRef="train:v2")).name == "train-v2"
    registry.unregister("tensorboard")
    assert registry.resolve(operation(hubRef="tensorboard")).name == "tensorboard"


def test_configured_hub_folders_come_after_the_builtin_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (second / "notify").mkdir(parents=True)
    first.mkdir()
    (first / "notify.yaml").write_text(
        "kind: component\nname: notify-first\nrun: {kind: job, container: {command: [x]}}\n"
    )
    (second / "notify.yaml").write_text(
        "kind: component\nname: notify-second\nrun: {kind: job, container: {command: [x]}}\n"
    )
    (second / "notify" / "v1.yaml").write_text(
        "kind: component\nname: notify-v1\nrun: {kind: job, container: {command: [x]}}\n"
    )
    (first / "tensorboard.yaml").write_text(
        "kind: component\nname: shadow\nrun: {kind: job, container: {command: [x]}}\n"
    )
    monkeypatch.setenv(HUB_PATH_ENV, f"{first}:{second}")
    registry = ComponentRegistry()
    assert registry.resolve(operation(hubRef="notify")).name == "notify-first"
    assert registry.resolve(operation(hubRef="notify:v1")).name == "notify-v1"
    assert registry.resolve(operation(hubRef="tensorboard")).name == "tensorboard"  # built-in first
    assert {"tensorboard", "webhook", "notify", "notify:v1"} <= set(registry.hub_names())


def test_unknown_hub_ref_lists_what_exists() -> None:
    registry = ComponentRegistry()
    registry.register("experiment", component("experiment"))
    with pytest.raises(ResolutionError) as info:
        registry.resolve(operation(hubRef="tensorbord"))
    message = info.value.message
    assert "did you mean `tensorboard`" in message
    assert "available: experiment, discord, hipchat, jupyterlab, mattermost, pagerduty, slack, teams, " in message
    assert "tensorboard:multi-run, tensorboard:path, tensorboard:single-run, tensorboard, webhook" in message
    assert info.value.path == ("hubRef",)


def test_an_unreachable_url_ref_is_an_error_naming_the_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path))
    with pytest.raises(ResolutionError) as info:
        ComponentRegistry().resolve(operation(urlRef="http://127.0.0.1:9/c.yaml"))  # the discard port: refused
    assert "urlRef `http://127.0.0.1:9/c.yaml` cannot be fetched" in info.value.message
    assert "use pathRef" in info.value.message
    assert info.value.path == ("urlRef",)
