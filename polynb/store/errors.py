"""Errors raised by the store. All derive from ``StoreError``; lookups also from ``LookupError``."""

from __future__ import annotations

from collections.abc import Sequence


class StoreError(Exception):
    """A problem with the store file or a request the store refuses."""


class SchemaVersionError(StoreError):
    """The store file was written by a newer polynb (or is not a polynb store)."""


class RunNotFoundError(StoreError, LookupError):
    """No run has this uuid (or, for a prefix lookup, this prefix or name)."""


class DuplicateRunError(StoreError):
    """A run with this uuid exists already."""


class AmbiguousRunError(StoreError, LookupError):
    """A short uuid prefix or a name matches several runs; ``candidates`` lists (uuid, name) pairs."""

    def __init__(self, query: str, candidates: Sequence[tuple[str, str]]) -> None:
        self.query = query
        self.candidates = list(candidates)
        shown = ", ".join(f"{uuid[:12]} ({name})" for uuid, name in self.candidates)
        super().__init__(f"{query!r} matches several runs: {shown}; type more of the uuid")
