"""Errors of the spec layer: each one names the file, line, column and field path of the problem."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

ROOT_PATH = "(root)"


@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem in a Polyaxonfile. ``line`` and ``column`` are 1-based; 0 means unknown."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path or ROOT_PATH}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpecErrors(ValueError):
    """Raised when a Polyaxonfile is invalid; carries every error found, in document order."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors: list[SpecError] = sorted(errors, key=lambda e: (e.file, e.line, e.column, e.path))
        super().__init__("\n".join(str(e) for e in self.errors) or "invalid Polyaxonfile")


def format_path(parts: Iterable[str | int]) -> str:
    """Render a field path as ``run.operations[1].events[0].kinds[0]``."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif out:
            out.append(f".{part}")
        else:
            out.append(str(part))
    return "".join(out) or ROOT_PATH
