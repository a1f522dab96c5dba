"""``check()``: load, resolve and validate Polyaxonfiles, and report every problem with its position.

This is the engine of ``polynb check``. It never raises for bad input: YAML and schema errors (from
``load``), resolution, params and graph errors (from ``compiler.pipeline``) all become ``SpecError`` with the
file, line, column and field path, so a cycle or an orphan points at the op's line
(``run.operations[2].dependencies[0]``).

Features that parse but the engine cannot run yet ("not supported yet") do not make a file invalid here:
the file is a valid Polyaxonfile, and ``polynb run`` refuses it. They are listed in ``CheckResult.warnings``
with the other warnings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polynb.compiler.pipeline import CLI_PARAMS, Pipeline, Problem, analyze_pipeline
from polynb.compiler.template_syntax import template_problems
from polynb.spec.dag import ORPHAN_REF
from polynb.spec.errors import SpecError, SpecErrors, format_path
from polynb.spec.load import SchemaErrors, drop_explained_missing, load_data
from polynb.spec.salvage import Salvaged, salvage
from polynb.spec.yaml_loader import Document, gc_paused, parse, read_source

if TYPE_CHECKING:
    from polynb.compiler.registry import ComponentRegistry


@dataclass(frozen=True, slots=True)
class OpSummary:
    """One op as ``check --json`` shows it."""

    name: str
    upstream: list[str]
    events: list[dict[str, Any]]
    trigger: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "upstream": self.upstream, "events": self.events, "trigger": self.trigger}


@dataclass
class CheckResult:
    valid: bool
    errors: list[SpecError]
    ops: list[OpSummary]
    pipelines: list[Pipeline] = field(default_factory=list)
    warnings: list[SpecError] = field(default_factory=list)
    """Features not supported yet (``polynb run`` refuses them) and ignored settings (``cache``)."""
    unsupported: list[SpecError] = field(default_factory=list)
    """The features not supported yet among ``warnings``: what ``polynb run`` refuses in a valid file."""

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "errors": [e.to_dict() for e in self.errors],
            "ops": [op.to_dict() for op in self.ops],
        }


def check(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    params: Mapping[str, Any] | None = None,
    registry: ComponentRegistry | None = None,
) -> CheckResult:
    """Check files (paths) or YAML texts (a ``str`` with a newline); collect every problem, never raise.

    One path or text is taken as one source, not as a sequence of characters.
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    errors: list[SpecError] = []
    warnings: list[SpecError] = []
    unsupported: list[SpecError] = []
    ops: list[OpSummary] = []
    pipelines: list[Pipeline] = []
    for n, entry in enumerate(sources):
        source = entry if isinstance(entry, str) else Path(entry)
        name = _name(source, n)
        try:
            with gc_paused():  # millions of small objects: collections would make checking super-linear
                pipeline, file_errors, file_warnings, file_unsupported = _check_one(source, name, params, registry)
        except Exception as exc:  # never a traceback for a user's file: report what broke, where
            pipeline, file_warnings, file_unsupported = None, [], []
            file_errors = [SpecError(name, 0, 0, format_path(()), f"internal error while checking: {exc!r}")]
        errors.extend(sorted(file_errors, key=_order))
        warnings.extend(sorted(file_warnings, key=_order))
        unsupported.extend(sorted(file_unsupported, key=_order))
        if pipeline is not None:
            pipelines.append(pipeline)
            with gc_paused():
                ops.extend(summarize(pipeline))
    return CheckResult(
        valid=not errors, errors=errors, ops=ops, pipelines=pipelines, warnings=warnings, unsupported=unsupported
    )


def summarize(pipeline: Pipeline) -> list[OpSummary]:
    """The ops of a pipeline in topological order (stages), for ``--json`` and ``--graph``."""
    ops = pipeline.ops
    nodes = pipeline.graph.nodes
    order = [name for stage in pipeline.graph.stages for name in stage if name in ops]
    if len(order) != len(ops):
        placed = set(order)
        order += [name for name in ops if name not in placed]
    position = {name: node.index for name, node in nodes.items()}.__getitem__
    out: list[OpSummary] = []
    for name in order:
        op = ops[name]
        node = nodes.get(name)
        if node is None:
            upstream: list[str] = []
        else:
            ups = node.upstream
            upstream = sorted(ups, key=position) if len(ups) > 1 else list(ups)
        events = [{"ref": e.ref, "kinds": [k.value for k in e.kinds]} for e in op.events] if op.events else []
        trigger = op.operation.trigger
        out.append(OpSummary(name, upstream, events, trigger.value if trigger is not None else "all_succeeded"))
    return out


def _name(source: str | Path, n: int) -> str:
    if _is_text(source):
        return "<string>" if n == 0 else f"<string-{n}>"
    return str(source)


def _is_text(source: str | Path) -> bool:
    return isinstance(source, str) and "\n" in source


def _order(e: SpecError) -> tuple[str, int, int, str]:
    return (e.file, e.line, e.column, e.path)


def _check_one(
    source: str | Path,
    name: str,
    params: Mapping[str, Any] | None,
    registry: ComponentRegistry | None,
) -> tuple[Pipeline | None, list[SpecError], list[SpecError], list[SpecError]]:
    if _is_text(source):
        raw: str | bytes = str(source)
        base_dir: Path | None = Path.cwd()
    else:
        path = Path(source)
        try:
            raw = read_source(path, name)
        except SpecErrors as exc:
            return None, list(exc.errors), [], []
        except IsADirectoryError:
            message = "is a directory; expected a Polyaxonfile (a YAML file)"
            return None, [SpecError(name, 0, 0, format_path(()), message)], [], []
        except OSError as exc:
            message = f"cannot read the file: {exc.strerror or exc}"
            return None, [SpecError(name, 0, 0, format_path(()), message)], [], []
        base_dir = path.resolve().parent
    try:
        document = parse(raw, name)
    except SpecErrors as exc:
        return None, list(exc.errors), [], []
    salvaged: Salvaged | None = None
    try:
        spec = load_data(document)
    except SchemaErrors as exc:
        # Check what can be checked anyway (the graph above all), so one pass reports every error.
        salvaged = salvage(document.data, exc.details)
        if salvaged is None:
            return None, [*exc.errors, *template_errors(document)], [], []
        spec = salvaged.spec
        schema_errors = list(exc.errors)
    stubs = salvaged.stubs if salvaged is not None else frozenset()
    report = analyze_pipeline(spec, params=params, registry=registry, base_dir=base_dir, source=name, stubs=stubs)
    locator = _Locator(name, document)

    def located(problems: list[Problem]) -> list[SpecError]:
        if salvaged is not None:
            problems = [p for p in problems if not repeats_schema_error(p, salvaged)]
        return [locator.locate(p) for p in problems]

    errors = located(report.errors)
    errors += template_errors(document)
    unsupported = located(report.unsupported)
    warnings = [*unsupported, *located(report.warnings)]
    if salvaged is not None:
        return None, drop_explained_missing([*schema_errors, *errors]), warnings, unsupported
    return report.pipeline, errors, warnings, unsupported


def template_errors(document: Document) -> list[SpecError]:
    """The document's templates that cannot render (``template_syntax``), positioned in it."""
    out = []
    for path, message in template_problems(document.data):
        parts = as_written(path, document.data)
        line, column = document.position(parts)
        out.append(SpecError(document.filename, line, column, format_path(parts), message))
    return out


def repeats_schema_error(problem: Problem, salvaged: Salvaged) -> bool:
    """Whether a problem found in a salvaged document only follows from its schema errors."""
    if problem.file is not None or problem.located is not None:
        return False  # in another file
    return salvaged.repeats(problem.path) or (salvaged.unnamed and ORPHAN_REF in problem.message)


def as_written(path: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """A param's ``value`` path as written: the short form ``lr: 0.1`` has no ``value`` key, point at ``lr``."""
    if not path or path[-1] != "value":
        return path
    node = data
    for part in path[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return path
    return path if isinstance(node, dict) and "value" in node else path[:-1]


class _Locator:
    """Positions of problems: in the checked document, or in the referenced file they come from."""

    def __init__(self, name: str, document: Document) -> None:
        self.name = name
        self.documents: dict[str, Document | None] = {name: document}

    def locate(self, problem: Problem) -> SpecError:

        if problem.located is not None:
            return problem.located
        file = problem.file or self.name
        if problem.path[:1] == (CLI_PARAMS,):
            return SpecError(file, 0, 0, format_path(problem.path), problem.message)
        document = self._document(file)
        if document is None:
            return SpecError(file, 0, 0, format_path(problem.path), problem.message)
        parts = as_written(problem.path, document.data)
        line, column = document.position(parts)
        return SpecError(file, line, column, format_path(parts), problem.message)

    def _document(self, file: str) -> Document | None:
        if file not in self.documents:
            try:
                self.documents[file] = parse(read_source(file), file)
            except (OSError, SpecErrors):
                self.documents[file] = None
        return self.documents[file]
