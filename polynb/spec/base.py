"""The base of every spec model, shared by ``models`` and the section modules (``matrix``, ``schedule``...)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

TEMPLATE_REF = re.compile(r"{{\s*(.+)\s*}}")
"""A param reference (``{{ params.n }}``): Polyaxon's ``RefField``, a string holding one, resolved when the op
compiles. Searched, not matched: Polyaxon accepts any string that contains one."""


def is_ref_field(value: Any) -> bool:
    """Whether ``value`` is a ``{{ ... }}`` reference standing for a value given when the op compiles."""
    return isinstance(value, str) and TEMPLATE_REF.search(value) is not None


class Model(BaseModel):
    """Base of every spec model: camelCase keys, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_default=False,
        use_enum_values=False,
    )


def nested_error(loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A validation error located below the field being validated (pydantic prefixes the field's loc)."""
    error = PydanticCustomError("value_error", message)
    return ValidationError.from_exception_data("Polyaxonfile", [InitErrorDetails(type=error, loc=loc, input=value)])


def int_or_template(value: Any, what: str) -> Any:
    """An integer, or a ``{{ ... }}`` template that renders to one when the op compiles (Polyaxon's
    ``Union[StrictInt, RefField]``). As in Polyaxon, ``"10"`` (a string) is not an integer."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected an integer or a `{{{{ ... }}}}` param reference, got {value}")
    if isinstance(value, int):
        return value
    if is_ref_field(value):
        return value
    raise ValueError(f"{what}: expected an integer or a `{{{{ ... }}}}` param reference, got {value!r}")
