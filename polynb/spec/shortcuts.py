"""Polyaxon 2.18's root shortcuts ``cmd``, ``env`` and ``resources``: their forms and how they lower into the
run's main container (``polyaxon/_flow/polyaxonfile.py``, ``apply_shortcuts``).

* ``cmd`` is a shell script, a string or a list of lines: the container runs ``/bin/sh -c`` with
  ``set -e`` and the lines, one per line (so the first failing line fails the run);
* ``env`` is a mapping of names to string values, appended to the container's ``env`` (a name already there
  takes the new value);
* ``resources`` maps ``cpu``, ``memory``, ``gpu`` (``nvidia.com/gpu``) or an extended resource
  (``google.com/tpu``) to a value: a quantity (``cpu: 2``, ``memory: 4Gi``) is a request, an accelerator
  count is a request and a limit (Kubernetes requires them equal), and ``"1..2"`` is request ``1``, limit ``2``
  (either side may be left out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

SHELL = ["/bin/sh", "-c"]
GPU, NVIDIA_GPU = "gpu", "nvidia.com/gpu"
_NUMBER = r"(\d+(\.\d*)?|\.\d+)"
_CPU = re.compile(_NUMBER + r"[mun]?", re.ASCII)
_MEMORY = re.compile(_NUMBER + r"([KMGTPE]i|[kMGTPE])?", re.ASCII)
_QUANTITIES = {"cpu": _CPU, "memory": _MEMORY}
_MAX_INT = 2**63  # Kubernetes quantities stop at 64-bit integers
_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1), "m": Decimal("0.001"), "u": Decimal("1e-6"), "n": Decimal("1e-9"), "k": Decimal(10**3),
    "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}  # fmt: skip


def check_cmd(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("cmd must not be blank")
    elif isinstance(value, list):
        if not value:
            raise ValueError("cmd must not be empty")
        for index, line in enumerate(value):
            if not isinstance(line, str):
                raise ValueError(f"cmd[{index}]: expected a line of shell (a string), got {line!r}")
            if not line.strip():
                raise ValueError(f"cmd[{index}] must not be blank")
    return value


def cmd_container(cmd: str | list[str]) -> dict[str, list[str]]:
    """The ``command``/``args`` pair ``cmd`` lowers to."""
    lines = [cmd] if isinstance(cmd, str) else cmd
    return {"command": list(SHELL), "args": ["\n".join(["set -e", *lines])]}


def check_env(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, Mapping):
        raise ValueError("env is a mapping of names to string values, e.g. {PYTHONUNBUFFERED: '1'}")
    for name, item in value.items():
        if isinstance(item, bool | int | float):
            literal = str(item).lower() if isinstance(item, bool) else item
            raise ValueError(f'env.{name} must be a string; quote it: "{literal}"')
    return value


def env_entries(current: list[Any], env: Mapping[str, str]) -> list[dict[str, Any]]:
    """``current`` (the container's env) with ``env`` appended; a name already there takes the new value."""
    kept = [e for e in current if (e.get("name") if isinstance(e, dict) else getattr(e, "name", None)) not in env]
    return [*kept, *({"name": name, "value": value} for name, value in env.items())]


def check_resources(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, Mapping):
        raise ValueError("resources is a mapping of resource names to values, e.g. {cpu: 2, memory: 4Gi, gpu: 1}")
    if NVIDIA_GPU in value:
        raise ValueError("resources.nvidia.com/gpu is spelled gpu")
    for key, item in value.items():
        if key not in ("cpu", "memory", GPU) and not (isinstance(key, str) and "/" in key):
            raise ValueError(
                f"unknown resource `{key}`; use cpu, memory, gpu, or an extended resource such as google.com/tpu "
                "(requests and limits are written `cpu: 1..2`)"
            )
        parse_resource(str(key), item)
    return value


def parse_resource(key: str, value: Any) -> tuple[Any, Any]:
    """The (request, limit) of one entry; raise ``ValueError`` as Polyaxon does."""
    is_count = key not in _QUANTITIES
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"resources.{key} must be a number or a range such as 1..2")
    if not isinstance(value, str):
        if value != value or value in (float("inf"), float("-inf")) or value < 0:
            raise ValueError(f"resources.{key} must be a finite non-negative number")
        if value >= _MAX_INT:
            raise ValueError(f"resources.{key} is too large")
        if is_count and not isinstance(value, int):
            raise ValueError(f"resources.{key} must be an integer count")
        return (value, value) if is_count else (value, None)
    text = value.strip()
    is_range = ".." in text
    low, high = (p.strip() for p in text.split("..", 1)) if is_range else (text, "")
    if not low and not high:
        raise ValueError(f"resources.{key} needs a request, a limit, or both")
    for part in (low, high):
        if part and not _valid(key, part):
            raise ValueError(f"resources.{key} has an unsupported value `{part}`; use container.resources for other "
                             "quantities or templates")  # fmt: skip
    if low and high and _quantity(low) > _quantity(high):
        raise ValueError(f"resources.{key} has a request greater than its limit")
    request, limit = ((int(p) if is_count else p) if p else None for p in (low, high))
    if not is_range:
        return (request, request) if is_count else (request, None)
    return request, limit


def lower_resources(resources: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The container ``requests``/``limits`` of the shortcut; empty sides left out."""
    lowered: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    for key, value in resources.items():
        name = NVIDIA_GPU if key == GPU else key
        for side, quantity in zip(("requests", "limits"), parse_resource(key, value), strict=True):
            if quantity is not None:
                lowered[side][name] = quantity
    return {side: values for side, values in lowered.items() if values}


def _valid(key: str, part: str) -> bool:
    pattern = _QUANTITIES.get(key)
    if pattern is None:
        return part.isascii() and part.isdigit() and int(part) < _MAX_INT
    return pattern.fullmatch(part) is not None


def _quantity(text: str) -> Decimal:
    match = re.fullmatch(_NUMBER + r"([a-zA-Z]*)", text)
    try:
        return Decimal(match.group(1)) * _SUFFIX.get(match.group(3) or "", Decimal(1)) if match else Decimal(0)
    except InvalidOperation:
        return Decimal(0)
