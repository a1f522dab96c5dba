"""Helpers for engine tests: pipelines from YAML text, an event recorder, store queries."""

from __future__ import annotations

import sys
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polynb.executors.local import LocalExecutor
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.spec.load import load_text
from polynb.spec.models import Component, Operation
from polynb.store import EventRecord, RunRecord, Store

DEADLOCK_GUARD = 60.0
"""Seconds before a wait is declared hung: a guard against deadlocks, never a timing assertion."""
PY = sys.executable


@dataclass(frozen=True)
class POp:
    name: str
    operation: Operation
    component: Component
    upstream: frozenset[str]
    events: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Pipe:
    name: str
    kind: str
    spec: Any
    inputs: dict[str, Any]
    ops: dict[str, POp]
    concurrency: int | None
    hooks: list[Any]
    base_dir: Path | None
    graph: Any = None


class Registry:
    """A component registry: ``register(name, component)`` and ``resolve(op, base_dir=...)`` by hubRef."""

    def __init__(self) -> None:
        self.components: dict[str, Component] = {}

    def register(self, name: str, component: Component) -> None:
        self.components[name] = component

    def resolve(self, op: Operation, *, base_dir: Any = None) -> Component:
        assert op.hub_ref is not None
        return self.components[op.hub_ref]


def _upstream(op: Operation) -> frozenset[str]:
    names = set(op.dependencies or ())
    for param in (op.params or {}).values():
        if param.ref and param.ref.startswith("ops."):
            names.add(param.ref.removeprefix("ops."))
    for trigger in op.events or ():
        if trigger.ref.startswith("ops."):
            names.add(trigger.ref.removeprefix("ops."))
    return frozenset(names)


def build(text: str, *, params: dict[str, Any] | None = None, registry: Registry | None = None) -> Pipe:
    """A pipeline from YAML: the project's ``build_pipeline`` when it exists, else a minimal stand-in."""
    spec = load_text(textwrap.dedent(text))
    try:
        from polynb.compiler.pipeline import build_pipeline  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        return build_pipeline(spec, params=params or {}, registry=registry, base_dir=Path.cwd())  # type: ignore[no-any-return]
    component = spec.component if isinstance(spec, Operation) and spec.component else spec
    assert isinstance(component, Component | Operation)
    run = component.run
    inputs = {io.name: io.value for io in component.inputs or ()}
    inputs.update(params or {})
    if getattr(run, "kind", None) == "dag":
        by_name = {c.name: c for c in run.components or ()}  # type: ignore[union-attr]
        ops: dict[str, POp] = {}
        for op in run.operations:  # type: ignore[union-attr]
            if op.dag_ref:
                comp = by_name[op.dag_ref]
            elif op.hub_ref:
                assert registry is not None
                comp = registry.resolve(op)
            else:
                comp = op.component or Component.model_validate({"run": op.run.model_dump(by_alias=True)})  # type: ignore[union-attr]
            assert op.name is not None
            ops[op.name] = POp(op.name, op, comp, _upstream(op), tuple(op.events or ()))
        return Pipe(
            name=component.name or "dag",
            kind="dag",
            spec=spec,
            inputs=inputs,
            ops=ops,
            concurrency=run.concurrency,  # type: ignore[union-attr]
            hooks=list(component.hooks or ()),
            base_dir=None,
        )
    name = component.name or "job"
    comp = (
        component
        if isinstance(component, Component)
        else Component.model_validate(
            component.model_dump(by_alias=True, exclude_none=True, exclude={"kind", "params"})
        )
    )
    op = Operation.model_validate(
        {"name": name, "params": {k: {"value": v} for k, v in (params or {}).items()}, "hubRef": name}
    )
    return Pipe(name, "single", spec, {}, {name: POp(name, op, comp, frozenset())}, None, [], None)


class Recorder:
    """Collects every engine event; lets a test block (with a deadlock guard) until a predicate holds."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: EngineEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[EngineEvent]], bool]) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.events), timeout=DEADLOCK_GUARD), "deadlock guard"


@dataclass
class Env:
    store: Store
    engine: Engine
    executor: LocalExecutor
    registry: Registry
    recorder: Recorder
    tmp: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def run(self, text: str, **kwargs: Any) -> str:
        uuid = self.engine.submit(build(text, registry=self.registry, **kwargs))
        return uuid

    def wait(self, uuid: str, **kwargs: Any) -> str:
        return self.engine.wait(uuid, timeout=DEADLOCK_GUARD, **kwargs)

    def ops(self, dag_uuid: str) -> dict[str, RunRecord]:
        return {r.name: r for r in self.store.children(dag_uuid)}

    def log(self, dag_uuid: str | None = None) -> list[EventRecord]:
        return self.store.events(dag_uuid=dag_uuid)

    def seq(self, uuid: str, kind: str) -> int:
        found = [e.seq for e in self.store.events(run_uuid=uuid) if e.kind == kind]
        assert found, f"{kind} never emitted by {uuid}"
        return found[0]

    def kinds(self, uuid: str) -> list[str]:
        return [e.kind for e in self.store.events(run_uuid=uuid)]


def component(name: str, command: list[str], **extra: Any) -> Component:
    return Component.model_validate({"name": name, "run": {"kind": "job", "container": {"command": command}}, **extra})


def wait_flag(path: Path) -> list[str]:
    """A command that blocks until ``path`` exists: ops that stay running until the test lets them go."""
    return ["sh", "-c", f'while [ ! -e "{path}" ]; do sleep 0.05; done']


def write_outputs(**outputs: Any) -> list[str]:
    """A command that reports ``outputs`` the Polyaxon way (``$POLYAXON_RUN_OUTPUTS_PATH/outputs.json``)."""
    import json

    code = (
        "import json, os; "
        "path = os.path.join(os.environ['POLYAXON_RUN_OUTPUTS_PATH'], 'outputs.json'); "
        f"json.dump({json.dumps(outputs)}, open(path, 'w'))"
    )
    return [PY, "-c", code]


def yaml_list(argv: list[str]) -> str:
    import json

    return json.dumps(argv)


def _item(op: str) -> str:
    first, *rest = textwrap.dedent(op).strip().splitlines()
    return "\n".join([f"  - {first}", *(f"    {line}" for line in rest)])


def dag(*ops: str, components: str = "", extra: str = "", name: str = "dag") -> str:
    """A DAG component in YAML from op snippets (each a YAML mapping in flow style or block text)."""
    body = "\n".join(_item(op) for op in ops)
    text = f"version: 1.1\nkind: component\nname: {name}\n{extra}run:\n  kind: dag\n  operations:\n{body}\n"
    if components:
        text += "  components:\n" + textwrap.indent(textwrap.dedent(components).strip(), "  ") + "\n"
    return text


def job(name: str, argv: list[str], extra: str = "") -> str:
    """An op with an inline job component."""
    run = f"{{kind: job, container: {{command: {yaml_list(argv)}}}}}"
    return f"name: {name}\n{extra}component:\n  name: {name}\n  run: {run}"
