"""``schedule``: Polyaxon's cron, interval and datetime schedules, parsed and checked field by field.

* ``cron``: ``cron`` (an expression, checked here), ``startAt``, ``endAt``, ``maxRuns``, ``dependsOnPast``;
* ``interval``: ``frequency`` (seconds, ``"1:00:00"``, ``"1 day"`` or ISO 8601 such as ``PT1H``) and the same;
* ``datetime``: ``startAt`` only, one run.

Datetimes and durations are read as Polyaxon reads them (pydantic's ``datetime``/``timedelta``); each field
may also be a ``{{ ... }}`` reference. Polyaxon checks a cron expression only when its scheduler first
computes a tick; polynb checks it up front (a deliberate difference, listed in the agreement corpus).

A schedule on the top-level operation or component runs (``scheduler.schedules``); the compiler refuses one
anywhere else, and a templated field (``compiler.pipeline``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from polynb.spec.base import DEFERRED, Model, int_or_template, is_ref_field

_DATETIME = TypeAdapter(datetime, config=DEFERRED)
_TIMEDELTA = TypeAdapter(timedelta, config=DEFERRED)
_BOOL = TypeAdapter(bool, config=DEFERRED)

CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names) of the five fields; day-of-week 7 is Sunday too, as in cron(8).
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_ATOM = re.compile(r"^(?:\*|\?|(?P<a>\w+)(?:-(?P<b>\w+))?)(?:/(?P<step>\d+))?$")


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression (five fields, or a macro such as ``@daily``), or None."""
    text = expression.strip()
    if text.lower() in CRON_MACROS:
        return None
    fields = text.split()
    if len(fields) != 5:
        return (
            f"a cron expression has five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *', "
            f"or is one of {', '.join(sorted(CRON_MACROS))}; got {len(fields)} field(s)"
        )
    for (name, low, high, names), field in zip(_FIELDS, fields, strict=True):
        for atom in field.split(","):
            problem = _atom_problem(atom.lower(), name, low, high, names)
            if problem is not None:
                return f"{problem} (in '{expression}')"
    return None


def _atom_problem(atom: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str | None:
    match = _ATOM.match(atom)
    if match is None:
        return f"'{atom}' is not a valid {name} (a number, a range a-b, a list a,b, * or a step */n)"
    if match.group("step") is not None and int(match.group("step")) == 0:
        return f"the step of '{atom}' ({name}) must not be 0"
    for part in (match.group("a"), match.group("b")):
        if part is None:
            continue
        value = names.index(part) + (1 if names is _MONTHS else 0) if part in names else None
        if value is None:
            if not part.isdigit():
                return f"'{part}' is not a valid {name}"
            value = int(part)
        if not low <= value <= high:
            return f"{name} {part} is out of range {low}-{high}"
    return None


def _datetime_or_ref(value: Any, info: ValidationInfo) -> Any:
    if value is None or is_ref_field(value):
        return value
    try:
        _DATETIME.validate_python(value)
    except ValidationError:
        raise ValueError(
            f"`{_alias(info)}`: expected a datetime such as 2024-07-01T00:00:00Z or 2024-07-01 10:00, got {value!r}"
        ) from None
    return value


def _bool_or_ref(value: Any, info: ValidationInfo) -> Any:
    """A boolean as pydantic reads one leniently (Polyaxon's ``bool``: ``'yes'``, ``'off'``, ``1``...)."""
    if value is None or is_ref_field(value):
        return value
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        raise ValueError(f"`{_alias(info)}`: expected a boolean (true or false), got {value!r}") from None


def _alias(info: ValidationInfo) -> str:
    return to_camel(info.field_name or "")


class _Window(Model):
    start_at: Any = None
    end_at: Any = None
    max_runs: int | str | None = None
    depends_on_past: bool | str | None = None

    _dates = field_validator("start_at", "end_at", mode="before")(_datetime_or_ref)
    _bool = field_validator("depends_on_past", mode="before")(_bool_or_ref)
    _max = field_validator("max_runs", mode="before")(lambda v: None if v is None else int_or_template(v, "`maxRuns`"))

    @model_validator(mode="after")
    def _start_before_end(self) -> _Window:
        start, end = self.start_at, self.end_at
        if start is None or end is None or is_ref_field(start) or is_ref_field(end):
            return self
        first, last = _DATETIME.validate_python(start), _DATETIME.validate_python(end)
        if (first.tzinfo is None) == (last.tzinfo is None) and last <= first:
            raise ValueError(f"`endAt` ({end}) is not after `startAt` ({start}): the schedule would never run")
        return self


class CronSchedule(_Window):
    kind: Literal["cron"]
    cron: str

    @field_validator("cron")
    @classmethod
    def _expression(cls, value: str) -> str:
        if not is_ref_field(value):
            problem = cron_problem(value)
            if problem is not None:
                raise ValueError(problem)
        return value


class IntervalSchedule(_Window):
    kind: Literal["interval"]
    frequency: Any

    @field_validator("frequency", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if is_ref_field(value):
            return value
        try:
            duration = _TIMEDELTA.validate_python(value)
        except ValidationError:
            raise ValueError(
                f"`frequency`: expected a duration: seconds (3600), '1:00:00', '1 day' or ISO 8601 (PT1H), "
                f"got {value!r}"
            ) from None
        if duration <= timedelta(0):
            raise ValueError(f"`frequency` must be positive, got {value!r}")
        return value


class DateTimeSchedule(Model):
    kind: Literal["datetime"]
    start_at: Any

    _dates = field_validator("start_at", mode="before")(_datetime_or_ref)


Schedule = Annotated[CronSchedule | IntervalSchedule | DateTimeSchedule, Field(discriminator="kind")]
