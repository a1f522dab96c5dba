"""Polyaxonfile YAML from a ``%%polyaxon_*`` cell: load, build and report problems at the cell's own lines.

Positions are the cell's as the editor shows them: line 1 is the ``%%polyaxon_…`` line, so the first line
of the YAML body is line 2. The file name is ``<cell polyaxon_dag NAME>``. A ``%%polyaxon_dag`` body may be
a whole component (``kind: component`` with ``run.kind: dag``) or just the DAG (``operations:`` …, plus
component-level keys such as ``inputs`` or ``hooks``); the latter is wrapped, and its problems are still
positioned (and named) as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polynb.compiler.check import as_written, repeats_schema_error, template_errors
from polynb.compiler.pipeline import CLI_PARAMS, Pipeline, PipelineReport, analyze_pipeline
from polynb.compiler.registry import ComponentRegistry
from polynb.spec.errors import SpecError, SpecErrors, format_path
from polynb.spec.load import SchemaErrors, drop_explained_missing, load_data
from polynb.spec.models import Component, Operation
from polynb.spec.salvage import Salvaged, salvage
from polynb.spec.yaml_loader import Document, PathPart, parse

BODY_OFFSET = 1
"""Cell line of the body's first line, minus one: the magic's own line comes first."""
DAG_RUN_KEYS = frozenset(
    {"operations", "components", "environment", "connections", "volumes", "concurrency", "earlyStopping"}
)
"""Keys of a DAG-only body that belong to ``run`` (everything else is the component's)."""


def cell_filename(magic: str, name: str) -> str:
    return f"<cell {magic} {name}>"


@dataclass(frozen=True, slots=True)
class CellSpec:
    """A loaded cell: the spec, the document it came from and whether the body was wrapped."""

    spec: Component | Operation
    document: Document
    wrapped: bool
    data: dict[str, Any]
    """What the spec was validated from (for ``--save`` of a wrapped body)."""
    schema_errors: tuple[SpecError, ...] = ()
    """With ``salvaged``: the body's schema errors (positioned in the cell); ``spec`` is what could be salvaged, so
    the graph is checked too and one pass reports every problem, as ``polynb check`` does."""
    salvaged: Salvaged | None = None


class _Wrapped(Document):
    """A DAG-only body seen as a component: paths under ``run`` map back to where they are written."""

    def __init__(self, inner: Document, data: dict[str, Any]) -> None:
        super().__init__(data, inner.filename, inner.text)
        self.inner = inner

    def position(self, path: Sequence[PathPart], *, key: bool = False) -> tuple[int, int]:
        return self.inner.position(unwrap_path(path), key=key)


def unwrap_path(path: Sequence[PathPart]) -> tuple[PathPart, ...]:
    """``("run", "operations", 0)`` → ``("operations", 0)``; keys the wrapper added → the root."""
    parts = tuple(path)
    if parts[:1] == ("run",):
        return parts[1:] if len(parts) > 1 and parts[1] in DAG_RUN_KEYS else ()
    if parts[:1] and parts[0] in ("version", "kind"):
        return ()
    return parts


def load_cell(body: str, *, magic: str, name: str, dag_body: bool = False, salvage_ok: bool = False) -> CellSpec:
    """Parse and validate a cell body; raise ``SpecErrors`` positioned in the cell. With ``salvage_ok``, a body with
    schema errors whose graph can still be checked comes back salvaged (``build_cell_pipeline`` reports all)."""
    filename = cell_filename(magic, name)
    wrapped = False
    templates: list[SpecError] = []
    try:
        document = parse(body, filename)
        templates = to_cell(template_errors(document), wrapped=False)  # paths as written in the body
        data = document.data
        wrapped = bool(dag_body and isinstance(data, dict) and "kind" not in data and "operations" in data)
        if wrapped:
            data = wrap_dag_body(data, name)
            document = _Wrapped(document, data)
        try:
            spec = load_data(document)
        except SchemaErrors as exc:
            salvaged = salvage(document.data, exc.details) if salvage_ok else None
            if salvaged is None:
                raise
            found = (*to_cell(exc.errors, wrapped=wrapped), *templates)
            return CellSpec(salvaged.spec, document, wrapped, data, found, salvaged)
    except SpecErrors as exc:
        errors = [*to_cell(exc.errors, wrapped=wrapped), *templates]
        raise SpecErrors(sorted(errors, key=lambda e: (e.line, e.column))) from None
    if templates and not salvage_ok:
        raise SpecErrors(templates)
    return CellSpec(spec, document, wrapped, data, tuple(templates))


def wrap_dag_body(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    run = {"kind": "dag", **{k: v for k, v in body.items() if k in DAG_RUN_KEYS}}
    component = {k: v for k, v in body.items() if k not in DAG_RUN_KEYS}
    return {"version": 1.1, "kind": "component", "name": component.pop("name", name), **component, "run": run}


def build_cell_pipeline(
    cell: CellSpec,
    *,
    params: Mapping[str, Any],
    registry: ComponentRegistry,
    base_dir: Path,
) -> Pipeline:
    """Resolve, bind and validate; raise ``SpecErrors`` positioned in the cell (or in the files it refers to)."""
    stubs = cell.salvaged.stubs if cell.salvaged is not None else frozenset()
    report = analyze_pipeline(
        cell.spec, params=params, registry=registry, base_dir=base_dir, source=cell.document.filename, stubs=stubs
    )
    found = drop_explained_missing([*cell.schema_errors, *report_errors(report, cell)])
    errors = sorted(found, key=lambda e: (e.file, e.line, e.column))
    if errors or report.pipeline is None or cell.salvaged is not None:
        raise SpecErrors(errors or [SpecError(cell.document.filename, 0, 0, "", "the pipeline could not be built")])
    return report.pipeline


def report_errors(report: PipelineReport, cell: CellSpec) -> list[SpecError]:
    out = []
    own = cell.document.filename
    salvaged = cell.salvaged
    for problem in report.problems:
        if problem.severity == "warning" or (salvaged is not None and repeats_schema_error(problem, salvaged)):
            continue
        if problem.located is not None:
            out.append(problem.located)
            continue
        if problem.file not in (None, own):
            out.append(SpecError(problem.file or own, 0, 0, format_path(problem.path), problem.message))
            continue
        if problem.path[:1] == (CLI_PARAMS,):
            out.append(SpecError(own, 0, 0, format_path(problem.path), problem.message))
            continue
        parts = as_written(problem.path, cell.document.data)
        line, column = cell.document.position(parts)
        out.append(SpecError(own, line, column, format_path(parts), problem.message))
    return to_cell(out, wrapped=cell.wrapped, own=own)


def to_cell(errors: Sequence[SpecError], *, wrapped: bool, own: str | None = None) -> list[SpecError]:
    """Shift the body's lines to the cell's and, for a wrapped body, name paths as written."""
    out = []
    for e in errors:
        if own is not None and e.file != own:
            out.append(e)  # positioned in another file (a pathRef)
            continue
        path = e.path
        inner = path.removeprefix("run.")
        if wrapped and path.startswith("run.") and inner.split("[")[0].split(".")[0] in DAG_RUN_KEYS:
            path = inner
        message = _AT_LINE.sub(lambda m: f"{m[1]}{int(m[2]) + BODY_OFFSET}", e.message)  # lines named in it too
        out.append(SpecError(e.file, e.line + BODY_OFFSET if e.line else 0, e.column, path, message))
    return out


_AT_LINE = re.compile(r"(\((?:the construct started|first defined) at line )(\d+)")
"""The body's lines the YAML loader's messages name (``yaml_loader``)."""


def diagnostics(errors: Sequence[SpecError], filename: str) -> list[dict[str, Any]]:
    """The ``errors`` of a ``diagnostics`` comm message: problems in the cell itself."""
    return [
        {
            "line": e.line,
            "column": e.column,
            "message": f"{e.path}: {e.message}" if e.path else e.message,
            "severity": "error",
        }
        for e in errors
        if e.file == filename
    ]
