"""Joins at compile time: an op's ``joins`` select runs of the store and feed its params as lists.

When an op with ``joins`` is compiled, each join's ``query``, ``sort``, ``limit`` and ``offset`` are
rendered (a ``{{ globals.uuid }}`` reads the op's own globals, ``{{ dag.uuid }}`` its DAG's, and the DAG's
inputs and the op's own params are there by name), then :func:`polynb.compiler.joins.select` picks the runs
among every run of the store but the op itself, and :func:`polynb.compiler.joins.aggregate` makes each
param's list, in the order the sort gives (creation order without one). The lists become the op's params (a
``contextOnly`` one a context value only), so they are checked against the inputs as any param is.

A run as a query sees it: ``uuid``, ``name`` (a sweep's trials and a schedule's ticks are named like their op,
as in Polyaxon and in their own ``globals.name``: ``name: tune`` finds the trials of ``tune``), ``kind``,
``status``, ``created_at``, ``started_at``, ``finished_at``, ``duration``, ``wait_time``, ``inputs``,
``outputs`` and ``metrics`` (polynb records a run's metrics as its outputs, so ``metrics.loss`` and
``outputs.loss`` are the same value), ``pipeline`` (the uuid of the DAG or sweep the run is under) and
``project.name`` (its ``globals.project_name``: the DAG it is an op of, or its own name at the top level). A
join param's ``value`` reads ``inputs.X``, ``outputs.X``, ``globals.uuid``/``globals.name``, ``inputs``/``outputs``
whole, or ``artifacts.base``/``artifacts.outputs``/... (the run's paths relative to the artifacts root, and its
lineage, as a ``ref`` param reads them).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from polynb.compiler.errors import CompilerError
from polynb.compiler.joins import QueryError, aggregate, select
from polynb.compiler.templates import is_template, render_str
from polynb.spec.joins import Join
from polynb.spec.models import Param
from polynb.store import RunRecord


def project_of(record: RunRecord, runs: Mapping[str, RunRecord]) -> str:
    """The run's project as its ``globals.project_name`` says it: the pipeline it is an op of (a sweep's or a
    schedule's trials belong to the pipeline of their op), else its own name (a top-level run)."""
    parent = runs.get(record.dag_uuid) if record.dag_uuid else None
    while parent is not None and parent.kind in _OP_RUNS_OVER and parent.dag_uuid:
        parent = runs.get(parent.dag_uuid)
    return parent.name if parent is not None else record.name


def name_of(record: RunRecord, runs: Mapping[str, RunRecord]) -> str:
    """The run's name as Polyaxon gives it: a sweep's trial or a schedule's tick is named like its op (the run
    over them), as its own ``globals.name`` says; polynb's ``tune-1``, ``tune-2`` only tell them apart in lists."""
    parent = runs.get(record.dag_uuid) if record.dag_uuid and record.hook_of is None else None
    return parent.name if parent is not None and parent.kind in _OP_RUNS_OVER else record.name


def run_fields(record: RunRecord, runs: Mapping[str, RunRecord] | None = None) -> dict[str, Any]:
    """A run as join queries read it (see the module docstring); ``runs`` by uuid give its project."""
    outputs = dict(record.outputs)
    return {
        "uuid": record.uuid,
        "name": name_of(record, runs or {}),
        "kind": record.kind,
        "status": record.status.value,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration": record.duration,
        "wait_time": record.wait_time,
        "inputs": dict(record.inputs),
        "outputs": outputs,
        "metrics": outputs,
        "pipeline": record.dag_uuid,
        "project": {"name": project_of(record, runs or {})},
    }


_OP_RUNS_OVER = frozenset({"matrix", "schedule"})
"""Kinds of the run an op has over its trials or ticks: the trials are in the op's pipeline's project."""


def _rendered(value: Any, context: Mapping[str, Any], what: str) -> Any:
    if isinstance(value, str) and is_template(value):
        return render_str(value, context)
    return value


_BRACES = re.compile(r"^\{\{\s*(.+?)\s*\}\}$")


def _path(value: str) -> str:
    """A join param's ``value`` path: ``{{ outputs.loss }}`` is ``outputs.loss`` (as for a param with a ref)."""
    match = _BRACES.match(value.strip())
    return match.group(1) if match else value.strip()


def _artifact(artifacts: Mapping[str, Any], key: str) -> Any:
    """``artifacts`` whole, ``artifacts.outputs`` or ``artifacts.<lineage>.<field>`` of one run (None if absent)."""
    if not key:
        return dict(artifacts)
    name, _, field = key.partition(".")
    value = artifacts.get(name)
    if field:
        return value.get(field) if isinstance(value, Mapping) else None
    return value


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise CompilerError(f"join `{what}` is {value!r} once rendered: expected an integer") from None
    if number < 0:
        raise CompilerError(f"join `{what}` is {number}: expected 0 or more")
    return number


def join_params(
    joins: Sequence[Join],
    runs: Sequence[RunRecord],
    context: Mapping[str, Any],
    *,
    exclude: str,
    artifacts: Callable[[str], Mapping[str, Any]] = lambda uuid: {},
) -> dict[str, Param]:
    """The params the joins give (``CompilerError`` for a query that cannot be read once rendered).
    ``artifacts`` gives a run's artifacts by uuid (``compiler.params.artifacts_of``), for ``artifacts.*``."""
    by_uuid = {r.uuid: r for r in runs}
    candidates = [run_fields(r, by_uuid) for r in sorted(runs, key=lambda r: r.created_at) if r.uuid != exclude]
    params: dict[str, Param] = {}
    for j, join in enumerate(joins):
        query = str(_rendered(join.query, context, "query"))
        sort = _rendered(join.sort, context, "sort")
        limit = _count(_rendered(join.limit, context, "limit"), "limit")
        offset = _count(_rendered(join.offset, context, "offset"), "offset")
        try:
            found = select(candidates, query, sort=str(sort) if sort else None, limit=limit, offset=offset)
        except QueryError as exc:
            raise CompilerError(f"joins[{j}]: {exc} (query `{query}`)") from None
        values = {name: _path(p.value) for name, p in (join.params or {}).items() if isinstance(p.value, str)}
        lists = aggregate(found, values)
        for name, value in values.items():
            head, _, key = value.strip().partition(".")
            if head == "artifacts":  # the runs' folders (and lineage), as a ref param reads them
                lists[name] = [_artifact(artifacts(str(run["uuid"])), key) for run in found]
            elif head == "globals":  # times as ISO 8601 text, as a ref param reads them
                lists[name] = [v.isoformat() if isinstance(v, datetime) else v for v in lists.get(name, ())]
        for name, param in (join.params or {}).items():
            if name in lists:
                params[name] = Param(value=lists[name], context_only=param.context_only)
    return params
