"""What can still be checked in a Polyaxonfile that does not validate, so ``check`` reports everything at once.

Schema errors stop validation, so the DAG checks (orphans, cycles, duplicate names, refs) never ran and a
second ``check`` showed more errors. Here the document is repaired just enough to validate, keeping every
position: an op with a schema error becomes a *stub* (its name, ``dependencies``, ``events`` and ref params,
each only if no error lies inside it), and an unknown key outside the ops is dropped. The graph is then
checked with the stubs in it, which keeps their edges; the builder resolves nothing for a stub, and a problem
at or around a reported error is left out (it would only repeat it).

A wrong value outside the ops goes too when no graph check reads it (``concurrency: lots``). Anything else
(a wrong input type, a missing field, a list item that is not a mapping, ...) is not guessed at: ``salvage``
returns None and only the schema errors are reported, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from polynb.spec import models
from polynb.spec.load import error_path
from polynb.spec.yaml_loader import PathPart

__all__ = ["Salvaged", "salvage"]

Path = tuple[PathPart, ...]

_ROUNDS = 4  # each round strips what the previous one left failing; real files need one or two
_STUB_LISTS = ("dependencies", "events")
_STUB_REF = "polynb-salvage:stub"
"""A ``urlRef`` that makes a stub a valid operation; the builder never resolves a stub."""


@dataclass(frozen=True)
class Salvaged:
    spec: models.Component | models.Operation
    stubs: frozenset[Path]
    """Document paths of the ops replaced by stubs."""
    reported: tuple[Path, ...]
    """Where the schema errors are: a later problem at, above or below one of them repeats it."""
    unnamed: bool = False
    """Whether a stub lost its op's name (not a string): a ref to any name may be a ref to it."""

    def repeats(self, path: Sequence[PathPart]) -> bool:
        """Whether a problem at ``path`` (of the checked document) is at, above or below a schema error."""
        path = tuple(path)
        return any(path[: len(r)] == r or r[: len(path)] == path for r in self.reported)


def salvage(data: Any, details: Sequence[ErrorDetails]) -> Salvaged | None:
    """The document with its broken ops stubbed and unknown keys dropped, validated; None when that fails."""
    if not isinstance(data, dict):
        return None
    errors_in: dict[Path, list[Path]] = {}  # op path -> the error paths inside it (relative)
    dropped: list[Path] = []
    reported: list[Path] = []
    current: Any = data
    for _ in range(_ROUNDS):
        for error in details:
            path = error_path(error, current)
            reported.append(path)
            op = _op_of(path)
            if op is not None:
                errors_in.setdefault(op, []).append(path[len(op) :])
            elif _droppable(path, error["type"]):
                dropped.append(path)
            else:
                return None
        current = data
        for path in dropped:
            current = _edit(current, path, None)
        for op, inside in sorted(errors_in.items(), key=lambda item: len(item[0])):
            current = _edit(current, op, partial(_stub, errors=inside))
        try:
            spec = models.parse_polyaxonfile(current)
        except ValidationError as exc:
            details = exc.errors(include_url=False)
            continue
        except Exception:  # a repair that made no sense to the model: report the schema errors only
            return None
        unnamed = any(_name_lost(_get(data, op), inside) for op, inside in errors_in.items())
        return Salvaged(spec, frozenset(errors_in), tuple(dict.fromkeys(reported)), unnamed)
    return None


# Where a dropped value could change what the graph checks conclude (types of refs, required inputs, aliases).
_KEEP_UNDER = frozenset({"components", "inputs", "outputs", "params", "component", "run", "matrix", "kind"})


def _droppable(path: Path, kind: str) -> bool:
    """Whether the key at ``path`` (outside the ops) can go: an unknown key (the document means the same without
    it), or a wrong value of a setting the graph checks do not read (``concurrency: lots``)."""
    if not path or not isinstance(path[-1], str) or kind == "missing":
        return False
    if kind == "extra_forbidden":
        return True
    return path[-1] not in _KEEP_UNDER and (_KEEP_UNDER.isdisjoint(path[:-1]) or path[-2:-1] == ("run",))


def _op_of(path: Path) -> Path | None:
    """The path of the innermost op (``...run.operations[i]``) that ``path`` is in, if any."""
    for k in range(len(path) - 2, 0, -1):
        if path[k] == "operations" and path[k - 1] == "run" and isinstance(path[k + 1], int):
            return path[: k + 2]
    return None


def _get(node: Any, path: Path) -> Any:
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _name_lost(original: Any, errors: list[Path]) -> bool:
    return isinstance(original, dict) and "name" in original and "name" not in _stub(original, errors)


def _stub(original: Any, errors: list[Path]) -> dict[str, Any]:
    """What of an op the graph needs, each part kept only when no error lies inside it."""

    def clean(*prefix: PathPart) -> bool:
        return not any(e[: len(prefix)] == prefix or prefix[: len(e)] == e for e in errors)

    stub: dict[str, Any] = {"urlRef": _STUB_REF}
    if not isinstance(original, dict):
        return stub
    if isinstance(original.get("name"), str) and clean("name"):
        stub["name"] = original["name"]
    for key in _STUB_LISTS:
        if isinstance(original.get(key), list) and clean(key):
            stub[key] = original[key]
    params = original.get("params")
    if isinstance(params, dict):
        refs = {
            name: value
            for name, value in params.items()
            if isinstance(value, dict) and "ref" in value and clean("params", name)
        }
        if refs:
            stub["params"] = refs
    return stub


def _edit(node: Any, path: Path, change: Callable[[Any], Any] | None) -> Any:
    """``node`` with the value at ``path`` changed (``change``) or removed (None); containers along the path
    are copied, the rest is shared."""
    if not path:
        return change(node) if change is not None else node
    head, rest = path[0], path[1:]
    if isinstance(node, dict) and head in node:
        copy = dict(node)
        if rest or change is not None:
            copy[head] = _edit(node[head], rest, change)
        else:
            del copy[head]
        return copy
    if isinstance(node, list) and isinstance(head, int) and 0 <= head < len(node) and (rest or change is not None):
        items = list(node)
        items[head] = _edit(node[head], rest, change)
        return items
    return node
