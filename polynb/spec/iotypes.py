"""IO types of Polyaxonfile inputs/outputs and the checks of values against them.

Polyaxon accepts its own type names (``path``, ``uri``, ``image``, ``git``, ...) and Python-like names
(``int``, ``float``, ``List[str]``). Values are checked the same way for a declared ``value``, a ``-P``
param on the command line, and a value flowing from an upstream output.
"""

from __future__ import annotations

import math
import re
from typing import Any

POLYAXON_TYPES = frozenset(
    {
        "any", "artifacts", "date", "datetime", "dockerfile", "email", "event", "file", "gcs", "git",
        "image", "metadata", "metric", "path", "s3", "str", "tensorboard", "timedelta", "uri", "uuid",
        "wasb",
    }
)  # fmt: skip
SCALAR_TYPES = frozenset({"int", "float", "bool", "dict", "list"})
KNOWN_TYPES = POLYAXON_TYPES | SCALAR_TYPES
_GENERIC = re.compile(r"^(List|Dict)\[.+\]$")
# Types whose values are plain strings (paths, images, uris, ...).
_STRING_LIKE = POLYAXON_TYPES - {"any", "artifacts", "dockerfile", "event", "git", "metric", "metadata"}


def is_known_type(name: str) -> bool:
    return name in KNOWN_TYPES or bool(_GENERIC.match(name))


def normalize_type(name: str) -> tuple[str, bool]:
    """``List[str]`` -> (``str``, True); ``float`` -> (``float``, False)."""
    if name.startswith("List[") and name.endswith("]"):
        inner = name[5:-1].strip()
        return (inner if inner in KNOWN_TYPES else "any"), True
    if name.startswith("Dict["):
        return "dict", False
    return name, False


def _check_scalar(type_name: str, value: Any) -> Any:
    """Return the value converted to ``type_name`` the way Polyaxon does, or raise ``ValueError``."""
    if type_name == "any" or value is None:
        return value
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
            return value.lower() in {"true", "1", "yes"}
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(f"expected a boolean, got {value!r}")
    if type_name == "int":
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ValueError(f"expected an integer, got {value!r}")
    if type_name == "float":
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ValueError(f"expected a number, got {value!r}")
    if type_name == "dict":
        if isinstance(value, dict):
            return value
        raise ValueError(f"expected a mapping, got {value!r}")
    if type_name == "list":
        if isinstance(value, list):
            return value
        raise ValueError(f"expected a list, got {value!r}")
    if type_name == "git":
        if isinstance(value, dict | str):
            return value
        raise ValueError(f"expected a git url or mapping, got {value!r}")
    if type_name in _STRING_LIKE:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"expected a string ({type_name}), got {value!r}")
    return value


def require_finite(value: Any) -> Any:
    """``value`` if no number in it is NaN or infinite, else ``ValueError``: a run's params and inputs are
    stored as JSON, which has no such numbers (SQLite's JSON functions refuse the rows that hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number (JSON, which records a run's params, has none)")
    if isinstance(value, list | tuple):
        for item in value:
            require_finite(item)
    elif isinstance(value, dict):
        for item in value.values():
            require_finite(item)
    return value


def check_value(type_name: str | None, value: Any, *, is_list: bool = False) -> Any:
    """Check (and lightly convert) ``value`` against an IO type; raise ``ValueError`` with the reason."""
    if type_name is None:
        return value
    base, generic_list = normalize_type(type_name)
    if is_list or generic_list:
        if not isinstance(value, list):
            raise ValueError(f"expected a list of {base}, got {value!r}")
        return [_check_scalar(base, item) for item in value]
    return _check_scalar(base, value)
