"""Size limits on what a Polyaxonfile may ask for, each raised (or lowered) by an environment variable.

Without them one file can exhaust the engine: a 50 MB YAML file takes seconds and gigabytes to check, and a
template that doubles a string a few times builds a 128 MB argument that is then stored and sent to every
executor. The defaults are far above real pipelines (a 100,000-op DAG is a 15 MB file) and each error names
its variable; ``0`` turns a limit off. Variables are read when a limit is checked, so a notebook can change
them without a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_OPS",
    "MAX_RENDERED_CHARS",
    "MAX_SPEC_BYTES",
    "Limit",
    "LimitError",
]


class LimitError(ValueError):
    """A size limit was exceeded; the message names the limit and how to raise it."""


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit: its environment variable, its default, and the unit its messages count in."""

    env: str
    default: int
    unit: str

    def value(self) -> int | None:
        """The limit in force (None: no limit). Raise :class:`LimitError` when the variable is not a number."""
        raw = os.environ.get(self.env)
        if raw is None or not raw.strip():
            return self.default
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            raise LimitError(f"{self.env}={raw!r} is not a whole number (0 turns the limit off)") from None
        if value < 0:
            raise LimitError(f"{self.env}={raw!r} is negative (0 turns the limit off)")
        return value or None

    def exceeded(self, size: int, what: str, *, at_least: bool = False, limit: int | None = None) -> str | None:
        """The message when ``size`` is over the limit, else None; ``what`` leads to the number ("the file is").

        ``at_least``: ``size`` is where counting stopped, not the whole size. ``limit``: the value in force, when
        the caller has read it already.
        """
        limit = self.value() if limit is None else limit
        if limit is None or size <= limit:
            return None
        return (
            f"{what} {'at least ' if at_least else ''}{size:,} {self.unit}, more than the limit of {limit:,} "
            f"{self.unit}; set {self.env} to raise it (0 for no limit)"
        )

    def check(self, size: int, what: str, *, at_least: bool = False) -> None:
        """Raise :class:`LimitError` when ``size`` is over the limit."""
        message = self.exceeded(size, what, at_least=at_least)
        if message is not None:
            raise LimitError(message)


MAX_SPEC_BYTES = Limit("POLYNB_MAX_SPEC_BYTES", 32 * 1024 * 1024, "bytes")
"""Size of a Polyaxonfile (YAML)."""
MAX_OPS = Limit("POLYNB_MAX_OPS", 100_000, "ops")
"""Operations of one DAG (the spec benchmark checks 100,000)."""
MAX_NAME_LENGTH = Limit("POLYNB_MAX_NAME_LENGTH", 128, "characters")
"""Length of a run's name (an op's or a top-level component's); Polyaxon's limit is 128 characters."""
MAX_RENDERED_CHARS = Limit("POLYNB_MAX_RENDERED_CHARS", 1024 * 1024, "characters")
"""Size of one rendered ``{{ }}`` template value, and of the strings a template builds on the way."""
