"""``joins``: params aggregated over the runs a query selects (Polyaxon's ``V1Join``).

A join is a search: ``query`` (Polyaxon's query language, e.g. ``metrics.loss: <0.01, kind: job``) with an
optional ``sort``, ``limit`` and ``offset``; each of its ``params`` reads one field of every run found
(``value: outputs.loss``) and the op receives the list of them. ``ref`` optionally scopes the search. The
params take no ``ref`` of their own: the search is the reference. ``limit`` and ``offset`` are integers or a
``{{ ... }}`` param reference resolved when the op compiles.

polynb parses and checks joins; running an op with joins is refused (executing queries comes later).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from polynb.spec.base import Model, int_or_template


class JoinParam(Model):
    """One aggregated param: ``value`` names what is read from each run found (``outputs.loss``,
    ``inputs``, ``artifacts.base``, ``globals.uuid``) or, for ``toInit``, an artifacts mapping."""

    value: Any = Field(default=None, validate_default=True)
    ref: str | None = None  # accepted (Polyaxon's V1JoinParam is a V1Param) but meaningless: check warns
    context_only: bool | None = None
    connection: str | None = None
    to_init: bool | None = None
    to_env: str | None = None

    @field_validator("value")
    @classmethod
    def _needs_value(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("a join param needs a `value`, e.g. outputs.loss or globals.uuid")
        return value


class Join(Model):
    """One search whose results feed the op's params (see the module docstring)."""

    query: str
    ref: str | None = None
    sort: str | None = None
    limit: int | str | None = None
    offset: int | str | None = None
    params: dict[str, JoinParam] | None = None

    @field_validator("limit", "offset", mode="before")
    @classmethod
    def _int_or_ref(cls, value: Any, info: Any) -> Any:
        return None if value is None else int_or_template(value, f"`{info.field_name}`")


JOIN_SECTIONS = ("inputs", "outputs", "artifacts", "globals")
"""What a join param's dotted ``value`` may read (``outputs.loss``); a bare one also ``io`` (Polyaxon's rules)."""


def join_value_problem(value: Any) -> str | None:
    """Why a join param's ``value`` cannot be read from the runs found, or None.

    Polyaxon's ``ParamValueMixin.get_spec`` rules: ``inputs``/``outputs``/``io``/``artifacts`` alone,
    ``SECTION.NAME`` with a section of :data:`JOIN_SECTIONS`, and three parts only under ``artifacts``. A
    mapping (an artifacts selection for ``toInit``) is taken as is.
    """
    if isinstance(value, dict):
        return None
    if not isinstance(value, str):
        return f"expected a string such as outputs.loss or globals.uuid, got {value!r}"
    text = value.strip()
    if text.startswith("{{") and text.endswith("}}"):
        text = text[2:-2].strip()
    parts = [part.strip() for part in text.split(".")]
    if len(parts) > 3:
        return f"cannot read `{value}`: at most three parts (artifacts.NAME.KEY)"
    if len(parts) == 1 and parts[0] not in ("inputs", "outputs", "io", "artifacts"):
        return f"`{value}` is not readable from a run: expected inputs, outputs, io, artifacts or SECTION.NAME"
    if len(parts) == 2 and parts[0] not in JOIN_SECTIONS:
        return f"`{parts[0]}` is not one of {', '.join(JOIN_SECTIONS)} (in `{value}`)"
    if len(parts) == 3 and parts[0] != "artifacts":
        return f"only `artifacts` values have three parts, got `{value}`"
    return None
