"""Hook runs of a sweep or a schedule survive an engine restart: the next engine on the store (``polynb attach``, a
new kernel) re-attaches those running and they end as they would have without the restart, once each, whether
they are the operation's hooks (run once for the sweep or the schedule) or its component's (once per trial or
tick), at the top level or on an op of a DAG."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.execkit import wait_until
from support.schedkit import DEADLOCK_GUARD, build, dag, describe

from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.lifecycle import Status
from polynb.scheduler.engine import Engine
from polynb.spec.models import Component
from polynb.store import RunRecord, Store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("POLYNB_HOME", str(tmp_path / "home"))
    opened = Store(tmp_path / "home" / "polynb.db")
    try:
        yield opened
    finally:
        opened.close()


def _engine(store: Store, tmp: Path, registry: ComponentRegistry) -> Engine:
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=tmp)}, registry=registry)
    engine.start()
    return engine


def _notify(tmp: Path) -> ComponentRegistry:
    """A hub component ``notify`` that waits for the file ``go``, then logs the main run's status."""
    go, log = tmp / "go", tmp / "hooks.log"
    command = ["sh", "-c", f'while [ ! -e "{go}" ]; do sleep 0.05; done; echo "$0" >> "{log}"', "{{ status }}"]
    registry = ComponentRegistry()
    registry.register(
        "notify",
        Component.model_validate(
            {
                "name": "notify",
                "inputs": [{"name": "status", "type": "str", "isOptional": True, "value": "none"}],
                "run": {"kind": "job", "container": {"command": command}},
            }
        ),
    )
    return registry


_HOOKS = "hooks: [{hubRef: notify, trigger: done}]\n"
_JOB = json.dumps(["true"])


def _sweep(on_component: bool) -> str:
    return (
        "name: tune\nmatrix: {kind: mapping, values: [{x: 1}, {x: 2}]}\n"
        + ("" if on_component else _HOOKS)
        + "component:\n  name: tune\n  inputs: [{name: x, type: int}]\n"
        + ("  " + _HOOKS if on_component else "")
        + f"  run: {{kind: job, container: {{command: {_JOB}}}}}\n"
    )


def _schedule(on_component: bool) -> str:
    return (
        "name: tick\nschedule: {kind: interval, frequency: 1, maxRuns: 1}\n"
        + ("" if on_component else _HOOKS)
        + "component:\n  name: tick\n"
        + ("  " + _HOOKS if on_component else "")
        + f"  run: {{kind: job, container: {{command: {_JOB}}}}}\n"
    )


def _hooks(store: Store, uuid: str) -> list[RunRecord]:
    """Every hook run under the pipeline ``uuid``: its own and those under its runs, at any depth."""
    found, todo = [], [uuid]
    while todo:
        below = store.children(todo.pop(), include_hooks=True, all_attempts=True)
        found += [r for r in below if r.hook_of is not None]
        todo += [r.uuid for r in below if r.hook_of is None]
    return found


@pytest.mark.parametrize("where", ["top", "dag"])
@pytest.mark.parametrize("on_component", [False, True], ids=["operation-hooks", "component-hooks"])
@pytest.mark.parametrize("pipeline", [_sweep, _schedule], ids=["sweep", "schedule"])
def test_the_hooks_of_a_sweep_or_a_schedule_running_at_a_restart_are_re_attached_and_end(
    store: Store, tmp_path: Path, pipeline: Callable[[bool], str], on_component: bool, where: str
) -> None:
    op = pipeline(on_component)
    text = "version: 1.1\nkind: operation\n" + op if where == "top" else dag(op)
    expected = (2 if pipeline is _sweep else 1) if on_component else 1  # once per trial or tick, else once
    first = _engine(store, tmp_path, _notify(tmp_path))
    try:
        uuid = first.submit(build(text, registry=_notify(tmp_path)))

        def all_hooks_running() -> bool:
            hooks = _hooks(store, uuid)
            return len(hooks) == expected and all(h.status == Status.RUNNING for h in hooks)

        wait_until(all_hooks_running, "the hooks running")
        assert store.get_run(uuid).is_final  # a hook never keeps its pipeline alive
    finally:
        first.shutdown(stop_running=False)  # the hooks go on, handed to the next engine on this store
    (tmp_path / "go").touch()
    second = _engine(store, tmp_path, ComponentRegistry())  # the hooks' components are in the store
    try:
        assert second.wait(uuid, timeout=DEADLOCK_GUARD) == "succeeded", describe(store, uuid)
        hooks = _hooks(store, uuid)
        assert [h.status for h in hooks] == [Status.SUCCEEDED] * expected, describe(store, uuid)
        assert (tmp_path / "hooks.log").read_text().split() == ["succeeded"] * expected  # each ran once
        assert all(h.attempt == 1 for h in hooks)
    finally:
        second.shutdown()
