"""``polynb.run(...)``: submit a pipeline to this process's notebook session from Python code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polynb.compiler.registry import ComponentRegistry
from polynb.notebook.handle import RunHandle
from polynb.notebook.session import get_session
from polynb.spec.errors import SpecErrors
from polynb.spec.models import Component, Operation


def run(
    spec: Component | Operation | str | os.PathLike[str],
    *,
    params: Mapping[str, Any] | None = None,
    executor: str | None = None,
    kubernetes: Mapping[str, Any] | None = None,
) -> RunHandle:
    """Validate and submit ``spec`` (a model, a Polyaxonfile path, or YAML text); return its handle.

    Components registered by ``%%polyaxon_component``/``%%polyaxon_python`` resolve by ``hubRef``. Bad
    input raises ``SpecErrors`` and submits nothing. The run goes on in the background; ``handle.wait()``.

    ``kubernetes`` (with ``executor="kubernetes"``) sets Kubernetes settings (``artifacts_claim``,
    ``security_profile``, ``keep_finished``, ...) over ``%config PolynbMagics.kubernetes``, the config file
    and ``POLYNB_K8S_*``, for this kernel's Kubernetes runs from now on.
    """
    from polynb.compiler.pipeline import build_pipeline
    from polynb.spec.load import load, load_text

    session = get_session()
    base_dir = Path.cwd()
    source: str | None = None
    values = dict(params or {})
    if isinstance(spec, Component | Operation):
        model = spec
    elif isinstance(spec, str) and "\n" in spec:
        _refuse_problems(spec, values, session.registry)
        model = load_text(spec, "<string>")
    else:
        path = Path(spec)
        _refuse_problems(path, values, session.registry)
        model = load(path)
        base_dir, source = path.resolve().parent, str(path)
    pipeline = build_pipeline(model, params=values, registry=session.registry, base_dir=base_dir, source=source)
    if pipeline.kind == "single" and values:
        # The engine compiles a single op from its operation's own params (not from the top-level inputs
        # a DAG run keeps), so the values go into the operation itself.
        model = _with_params(model, values)
        pipeline = build_pipeline(model, registry=session.registry, base_dir=base_dir, source=source)
    return session.submit(pipeline, executor=executor, kubernetes=kubernetes)


def _refuse_problems(source: str | Path, params: Mapping[str, Any], registry: ComponentRegistry) -> None:
    """Every problem ``polynb check`` finds in the file or text (not only the first schema error), before anything
    is submitted."""
    from polynb.compiler.check import check

    result = check(source, params=params or None, registry=registry)
    if result.errors:
        raise SpecErrors(result.errors)


def _with_params(spec: Component | Operation, values: Mapping[str, Any]) -> Operation:
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(spec, Component):
        named = {"name": spec.name} if spec.name else {}
        data = {"version": data.get("version", 1.1), "kind": "operation", **named, "component": data}
    data["params"] = {**data.get("params", {}), **{name: {"value": value} for name, value in values.items()}}
    return Operation.model_validate(data)


def emit(name: str, *, org: bool = False, **payload: Any) -> list[int]:
    """A custom event from a cell: ``project_custom_event`` (``org_custom_event`` with ``org=True``) named
    ``name`` with ``payload``, to the running DAGs of this kernel and of the other engines on this host (the
    ops awaiting ``{ref: dag, kinds: [project_custom_event]}`` start). Returns the seqs recorded: empty when
    no DAG is running."""
    kind = "org_custom_event" if org else "project_custom_event"
    return get_session().emit(kind, {**payload, "name": name})
