"""Did-you-mean suggestions for misspelled keys and enum values."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word``, or None; case and ``-``/``_`` differences count as close."""
    options = sorted(set(candidates))
    squashed = {_squash(c): c for c in options}
    exact = squashed.get(_squash(word))
    if exact is not None and exact != word:
        return exact  # hubref -> hubRef, hub_ref -> hubRef, run-status-running -> run_status_running
    lowered = {c.lower(): c for c in options}
    matches = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[matches[0]] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` when a close candidate exists, else ``""``."""
    match = closest(word, candidates)
    return f"; did you mean '{match}'?" if match is not None else ""


def _squash(word: str) -> str:
    return word.lower().replace("-", "").replace("_", "")
