"""The ``ref`` and ``value`` forms of params and event triggers, parsed once and checked strictly.

Polyaxon splits refs on ``.``: ``ops.NAME`` (an op of the same DAG), ``runs.UUID`` (an earlier run) and
``dag`` (the DAG's own inputs and globals). Anything else, including the docstring style ``{{ ops.a }}``
(which Polyaxon accepts for events but which silently creates no edge), is rejected here.
"""

from __future__ import annotations

import re
import uuid as uuid_mod
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

RefKind = Literal["ops", "runs", "dag"]

_TEMPLATE = re.compile(r"^\{\{\s*(.+?)\s*\}\}$")
VALUE_SECTIONS_ONE = frozenset({"inputs", "outputs", "io", "artifacts"})
VALUE_SECTIONS_TWO = frozenset({"inputs", "outputs", "artifacts", "globals"})


@dataclass(frozen=True, slots=True)
class Ref:
    kind: RefKind
    target: str | None  # the op name or run uuid; None for ``dag``

    def __str__(self) -> str:
        return "dag" if self.kind == "dag" else f"{self.kind}.{self.target}"


@dataclass(frozen=True, slots=True)
class ValuePath:
    """A value read from a referenced run: ``outputs.loss`` -> section ``outputs``, key ``loss``."""

    section: str
    key: str | None = None
    subkey: str | None = None

    def __str__(self) -> str:
        return ".".join(p for p in (self.section, self.key, self.subkey) if p)


def parse_ref(text: str) -> Ref:
    """Parse ``ops.NAME``, ``runs.UUID`` or ``dag``; raise ``ValueError`` with a precise message."""
    if "{{" in text or "}}" in text:
        inner = _TEMPLATE.match(text.strip())
        hint = f" write `{inner.group(1)}`" if inner else ""
        raise ValueError(f"a ref is not a template: `{text}` creates no dependency;{hint} without `{{{{ }}}}`")
    parts = text.split(".")
    head = parts[0]
    if head == "dag":
        if len(parts) != 1:
            raise ValueError(f"`{text}` is not a valid ref: `dag` takes no suffix")
        return Ref("dag", None)
    if head == "ops":
        if len(parts) != 2 or not parts[1]:
            raise ValueError(f"`{text}` is not a valid ref: expected `ops.<op-name>`")
        return Ref("ops", parts[1])
    if head == "runs":
        if len(parts) != 2:
            raise ValueError(f"`{text}` is not a valid ref: expected `runs.<uuid>`")
        try:
            run_uuid = uuid_mod.UUID(parts[1])
        except ValueError:
            raise ValueError(f"`{text}` is not a valid ref: `{parts[1]}` is not a run uuid") from None
        return Ref("runs", run_uuid.hex)
    raise ValueError(f"`{text}` is not a valid ref: expected `ops.<op-name>`, `runs.<uuid>` or `dag`")


def parse_value_path(text: str, ref: Ref) -> ValuePath:
    """Parse the ``value`` of a param that has a ``ref``: ``outputs.loss``, ``globals.uuid``, ``inputs``..."""
    inner = _TEMPLATE.match(text.strip())
    body = inner.group(1) if inner else text.strip()
    parts = body.split(".")
    if len(parts) == 1:
        if parts[0] == "globals":
            raise ValueError("`globals` as a whole is not a value; pick one key, e.g. `globals.uuid`")
        if parts[0] not in VALUE_SECTIONS_ONE:
            raise ValueError(
                f"`{body}` is not a value of a referenced run: expected one of inputs, outputs, io, artifacts, "
                "or `<section>.<key>` (e.g. outputs.loss, globals.uuid)"
            )
        path = ValuePath(parts[0])
    elif len(parts) == 2:
        if parts[0] not in VALUE_SECTIONS_TWO or not parts[1]:
            raise ValueError(
                f"`{body}` is not a value of a referenced run: expected inputs.<x>, outputs.<x>, "
                "artifacts.<x> or globals.<x>"
            )
        path = ValuePath(parts[0], parts[1])
    elif len(parts) == 3 and parts[0] == "artifacts" and all(parts):
        path = ValuePath(parts[0], parts[1], parts[2])
    else:
        raise ValueError(f"`{body}` is not a value of a referenced run: too many parts")
    if ref.kind == "dag" and path.section == "outputs":
        raise ValueError("`ref: dag` has no outputs while the DAG runs; use inputs.<x> or globals.<x>")
    return path


@lru_cache(maxsize=1 << 20)
def parse_ref_cached(text: str) -> Ref:
    """``parse_ref`` memoised: a DAG refers to the same few ops many times, and refs are immutable."""
    return parse_ref(text)
