"""Joins over past runs: Polyaxon's query language for runs (the part real files use), sort, limit and the
params aggregated as lists.

The scheduler does not execute joins yet (``polynb run`` refuses them); this module is the part that needs no
engine: ``check`` reads each join's ``query`` and ``sort`` with :func:`parse_query`/:func:`parse_sort` (a
mistake is an error at ``joins[i].query``), and :func:`select` and :func:`aggregate` are what a join does
with the runs of the store once the scheduler calls them.

Query syntax (Polyaxon's "Query Language" reference): conditions ``field: condition`` separated by commas,
all of which must hold. A condition is a value (``status: succeeded``), ``~`` negates it, ``a|b`` is one of,
``nil`` is unset, ``<``, ``<=``, ``>``, ``>=`` compare (metrics, durations, dates), ``a .. b`` is a range,
and ``%foo``, ``foo%``, ``%foo%`` match the end, the start or a part of a string. Sort: fields separated by
commas, ``-`` for descending.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from polynb.spec.base import TEMPLATE_REF

# Fields of a run (Polyaxon's runs query reference), and those with sub-keys (`metrics.loss`).
_SCALAR_FIELDS = frozenset({"id", "uid", "uuid", "name", "description", "created_at", "updated_at", "started_at",
                            "finished_at", "user", "status", "tags", "duration", "wait_time", "commit", "agent",
                            "queue", "artifacts_store", "kind", "runtime", "namespace", "live_state", "pipeline",
                            "controller", "original", "cloning_kind", "artifacts", "connections", "upstream",
                            "downstream", "component_state", "pending", "cost", "cpu", "memory", "gpu",
                            "custom"})  # fmt: skip
_NESTED_FIELDS = frozenset({"inputs", "in", "params", "outputs", "out", "metrics", "project", "meta_info",
                            "meta_values", "meta_flags", "pipeline", "controller", "original", "artifacts",
                            "connections", "upstream", "downstream"})  # fmt: skip
_ALIASES = {"uid": "uuid", "id": "uuid", "in": "inputs", "params": "inputs", "out": "outputs"}
_COMPARISON = re.compile(r"^(<=|>=|<|>)\s*(.+)$")
PLACEHOLDER = "__ref__"


class QueryError(ValueError):
    """A query or sort that cannot be read; the message says what is wrong in plain words."""


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    """Canonical: aliases resolved (``params.lr`` is ``inputs.lr``)."""
    negated: bool
    op: str
    """``eq``, ``in``, ``nil``, ``lt``, ``le``, ``gt``, ``ge``, ``range``, ``startswith``, ``endswith``,
    ``contains``."""
    values: tuple[str, ...]


def _field(name: str) -> str:
    head, dot, rest = name.partition(".")
    if dot:
        if head not in _NESTED_FIELDS or not rest:
            raise QueryError(f"`{name}` is not a run field; fields with a key are {', '.join(sorted(_NESTED_FIELDS))}")
        return f"{_ALIASES.get(head, head)}.{rest}"
    if name not in _SCALAR_FIELDS:
        raise QueryError(f"`{name}` is not a run field (e.g. status, kind, name, metrics.loss, inputs.lr)")
    return _ALIASES.get(name, name)


def parse_query(text: str) -> list[Condition]:
    """The conditions of a query; ``{{ ... }}`` parts (resolved when the op runs) read as a placeholder."""
    text = TEMPLATE_REF.sub(PLACEHOLDER, text)
    conditions: list[Condition] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, colon, condition = part.partition(":")
        if PLACEHOLDER in name:
            continue  # conditions given by a `{{ ... }}`: read when the op runs and the template is rendered
        if not colon:
            raise QueryError(f"`{part}` is not a condition: write `field: value`, e.g. `status: succeeded`")
        condition = condition.strip()
        negated = condition.startswith("~")
        condition = condition.removeprefix("~").strip()
        if not condition:
            raise QueryError(f"`{part}` has no value after `:`")
        conditions.append(_condition(_field(name.strip()), negated, condition))
    return conditions


def _condition(field: str, negated: bool, condition: str) -> Condition:
    if condition == "nil":
        return Condition(field, negated, "nil", ())
    if match := _COMPARISON.match(condition):
        op = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}[match.group(1)]
        return Condition(field, negated, op, (match.group(2).strip(),))
    if ".." in condition:
        low, _, high = (p.strip() for p in condition.partition(".."))
        if not low or not high:
            raise QueryError(f"`{condition}` is not a range: write `low .. high`")
        return Condition(field, negated, "range", (low, high))
    if "|" in condition:
        values = tuple(v.strip() for v in condition.split("|"))
        if not all(values):
            raise QueryError(f"`{condition}` has an empty alternative")
        return Condition(field, negated, "in", values)
    if len(condition) > 1 and condition.startswith("%") and condition.endswith("%"):
        return Condition(field, negated, "contains", (condition[1:-1],))
    if condition.startswith("%"):
        return Condition(field, negated, "endswith", (condition[1:],))
    if condition.endswith("%"):
        return Condition(field, negated, "startswith", (condition[:-1],))
    return Condition(field, negated, "eq", (condition,))


def parse_sort(text: str) -> list[tuple[str, bool]]:
    """The sort keys, each ``(field, descending)``."""
    keys: list[tuple[str, bool]] = []
    for part in (p.strip() for p in TEMPLATE_REF.sub(PLACEHOLDER, text).split(",")):
        if part and PLACEHOLDER not in part:
            descending = part.startswith("-")
            keys.append((_field(part.removeprefix("-").strip()), descending))
    return keys


# ------------------------------------------------------------------------------------ evaluation


def value_of(run: Mapping[str, Any], field: str) -> Any:
    """A run's value for a canonical field: ``run[field]``, or ``run[section][key]`` for ``section.key``."""
    head, dot, rest = field.partition(".")
    if not dot:
        return run.get(field)
    section = run.get(head)
    return section.get(rest) if isinstance(section, Mapping) else None


def _number(text: str) -> float | datetime | str:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text


def _comparable(value: Any, other: float | datetime | str) -> Any:
    if isinstance(other, float) and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(other, datetime) and isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(other, datetime) and isinstance(value, datetime):
        if (value.tzinfo is None) != (other.tzinfo is None):
            value = value.replace(tzinfo=other.tzinfo)
        return value
    return value if type(value) is type(other) else None


def _holds(condition: Condition, value: Any) -> bool:
    op, values = condition.op, condition.values
    if op == "nil":
        return value is None
    if value is None:
        return False
    if op in ("lt", "le", "gt", "ge", "range"):
        bounds = [_number(v) for v in values]
        current = [_comparable(value, b) for b in bounds]
        if any(c is None for c in current):
            return False
        try:
            if op == "range":
                return bool(bounds[0] <= current[0] and current[1] <= bounds[1])
            left, right = current[0], bounds[0]
            if op == "lt":
                return bool(left < right)
            if op == "le":
                return bool(left <= right)
            if op == "gt":
                return bool(left > right)
            return bool(left >= right)
        except TypeError:
            return False
    items = [str(v) for v in value] if isinstance(value, list | tuple) else [_text(value)]
    if op == "eq":
        return values[0] in items
    if op == "in":
        return any(v in items for v in values)
    if op == "startswith":
        return any(i.startswith(values[0]) for i in items)
    if op == "endswith":
        return any(i.endswith(values[0]) for i in items)
    return any(values[0] in i for i in items)  # contains


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


def matches(run: Mapping[str, Any], conditions: Sequence[Condition]) -> bool:
    """Whether every condition holds for ``run`` (a negated one: does not hold)."""
    return all(_holds(c, value_of(run, c.field)) != c.negated for c in conditions)


def select(
    runs: Iterable[Mapping[str, Any]],
    query: str,
    *,
    sort: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
) -> list[Mapping[str, Any]]:
    """The runs matching ``query``, sorted (unset values last), from ``offset``, at most ``limit``."""
    conditions = parse_query(query)
    found = [run for run in runs if matches(run, conditions)]
    for field, descending in reversed(parse_sort(sort or "")):
        present = [r for r in found if value_of(r, field) is not None]
        absent = [r for r in found if value_of(r, field) is None]
        present.sort(key=lambda r, f=field: value_of(r, f), reverse=descending)  # type: ignore[misc]
        found = present + absent
    start = offset or 0
    return found[start : start + limit if limit is not None else None]


def aggregate(runs: Sequence[Mapping[str, Any]], values: Mapping[str, str]) -> dict[str, list[Any]]:
    """Each join param's list: ``outputs.loss`` of every run, ``inputs`` (whole), ``globals.uuid``..."""
    out: dict[str, list[Any]] = {}
    for name, path in values.items():
        head, dot, rest = path.strip().partition(".")
        if head == "globals":
            out[name] = [run.get(rest) for run in runs]
        elif dot:
            out[name] = [value_of(run, f"{head}.{rest}") for run in runs]
        else:
            out[name] = [run.get(head) for run in runs]
    return out
