"""Finding a run from what a person types: used by the CLI and the notebook alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

from polynb.store.errors import AmbiguousRunError
from polynb.store.records import RunRecord

if TYPE_CHECKING:
    from polynb.store.store import Store


def resolve_run(store: Store, ref: str) -> RunRecord:
    """The run a user means by ``ref``: a uuid, a unique uuid prefix, or a name (the latest run of that name,
    top-level runs first). Raises ``RunNotFoundError`` / ``AmbiguousRunError`` (a prefix shared by runs).

    A name wins over uuid prefixes: ops called ``a``, ``b`` or ``add`` are spelled in hex digits, and with a
    few dozen runs some uuids always start with them."""
    try:
        return store.find_by_prefix(ref)
    except AmbiguousRunError:
        # A name used by several runs (every `polynb run` of a file reuses it), or also a uuid prefix.
        named = [r for r in store.list_runs() if r.name == ref.strip()]
        if not named:
            raise  # several uuids start with it: only more digits can tell them apart
        top = [r for r in named if r.dag_uuid is None and r.hook_of is None]
        return (top or named)[0]


def root_of(store: Store, run: RunRecord) -> RunRecord:
    """The top-level run ``run`` belongs to (itself when it is top-level)."""
    while run.dag_uuid or run.hook_of:
        run = store.get_run(run.dag_uuid or run.hook_of or "")
    return run
