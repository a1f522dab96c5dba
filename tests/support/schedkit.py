"""Helpers for engine tests: pipelines from YAML text, an event recorder, store queries."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polynb.compiler.pipeline import Pipeline, build_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.executors.local.executor import LocalExecutor
from polynb.scheduler.engine import Engine
from polynb.scheduler.events import EngineEvent
from polynb.spec.load import load_text
from polynb.spec.models import Component
from polynb.store import EventRecord, RunRecord, Store

from .recorder import Recorder

DEADLOCK_GUARD = 60.0
"""Seconds before a wait is declared hung: a guard against deadlocks, never a timing assertion."""
PY = sys.executable


def build(text: str, *, params: dict[str, Any] | None = None, registry: ComponentRegistry | None = None) -> Pipeline:
    """A pipeline from YAML text, built by the project's ``build_pipeline``."""
    spec = load_text(textwrap.dedent(text))
    return build_pipeline(spec, params=params or {}, registry=registry or ComponentRegistry(), base_dir=Path.cwd())


@dataclass
class Env:
    store: Store
    engine: Engine
    executor: LocalExecutor
    registry: ComponentRegistry
    recorder: Recorder[EngineEvent]
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

    code = (
        "import json, os; "
        "path = os.path.join(os.environ['POLYAXON_RUN_OUTPUTS_PATH'], 'outputs.json'); "
        f"json.dump({outputs!r}, open(path, 'w'))"
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


def describe(store: Store, dag_uuid: str) -> str:
    """Every op's status, reason and message: the message of a failing assertion."""
    return "\n".join(
        f"{r.name}: {r.status} {r.reason}: {r.message}" for r in store.children(dag_uuid, include_hooks=True)
    )
