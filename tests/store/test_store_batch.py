"""``Store.batch``: many writes, one transaction (the engine writes a turn of its loop this way). Each write
in it stays whole, readers elsewhere see it only at the commit, and a crash keeps only what was committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from polynb.lifecycle import Status
from polynb.store import DuplicateRunError, NewRun, Store, StoreError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_other_connections_see_a_batch_only_once_it_is_committed(db: Path) -> None:
    with Store(db) as store, Store(db) as reader:
        a, b = (store.create_run(NewRun(name=n, kind="job")) for n in ("a", "b"))
        with store.batch() as batch:
            store.set_status(a.uuid, Status.COMPILED)
            store.claim(a.uuid, executor="local")
            store.set_handle(a.uuid, {"pid": 1})
            assert store.get_run(a.uuid).status == Status.QUEUED  # the writer reads its own writes
            assert reader.get_run(a.uuid).status == Status.CREATED
            assert batch.commit()
            assert reader.get_run(a.uuid).status == Status.QUEUED
            assert reader.get_run(a.uuid).handle == {"pid": 1}
            assert not batch.commit()  # nothing written since
            store.set_status(b.uuid, Status.COMPILED)
            assert reader.get_run(b.uuid).status == Status.CREATED
        assert reader.get_run(b.uuid).status == Status.COMPILED  # the end of the block commits


def test_a_write_that_fails_in_a_batch_is_undone_whole_and_the_others_stay(
    db: Path, consistent: Callable[[Path], None]
) -> None:
    with Store(db) as store:
        taken = store.create_run(NewRun(name="taken", kind="job"))
        with store.batch():
            store.set_status(taken.uuid, Status.COMPILED)
            fresh = NewRun(name="fresh", kind="job")
            # The first run of the batch is inserted (with its history row and event) before the duplicate fails.
            with pytest.raises(DuplicateRunError):
                store.create_runs([fresh, NewRun(name="dup", kind="job", uuid=taken.uuid)])
            store.set_status(taken.uuid, Status.QUEUED)
        assert [r.name for r in store.list_runs()] == ["taken"]
        assert [c.status for c in store.status_history(taken.uuid)] == [Status.CREATED, Status.COMPILED, Status.QUEUED]
    consistent(db)


def fail_with_a_hook(store: Store, main: str) -> None:
    with store.atomic():
        store.set_status(main, Status.FAILED)
        store.create_runs([NewRun(name="hook", kind="job", hook_of=main)])
        raise RuntimeError("boom")


def commit_one_then_fail(store: Store, first: str, second: str) -> None:
    with store.batch() as batch:
        store.set_status(first, Status.COMPILED)
        batch.commit()
        store.set_status(second, Status.COMPILED)
        raise RuntimeError("boom")


def test_an_atomic_block_that_raises_in_a_batch_is_undone_alone(db: Path, consistent: Callable[[Path], None]) -> None:
    with Store(db) as store:
        main = store.create_run(NewRun(name="main", kind="job"))
        other = store.create_run(NewRun(name="other", kind="job"))
        with store.batch():
            store.set_status(other.uuid, Status.COMPILED)
            with pytest.raises(RuntimeError, match="boom"):
                fail_with_a_hook(store, main.uuid)
            with store.atomic():
                store.set_status(main.uuid, Status.SKIPPED)
        assert store.get_run(main.uuid).status == Status.SKIPPED
        assert store.hooks_of(main.uuid) == []
        assert store.get_run(other.uuid).status == Status.COMPILED
    consistent(db)


def test_a_batch_is_committed_between_atomic_blocks_only(db: Path) -> None:
    with Store(db) as store:
        run = store.create_run(NewRun(name="a", kind="job"))
        with store.batch() as batch, store.atomic():
            store.set_status(run.uuid, Status.COMPILED)
            with pytest.raises(StoreError, match="inside an atomic block"):
                batch.commit()
        with pytest.raises(StoreError, match="inside another batch"), store.batch(), store.batch():
            pass


def test_an_exception_out_of_a_batch_rolls_back_what_was_not_committed(db: Path) -> None:
    with Store(db) as store:
        a, b = (store.create_run(NewRun(name=n, kind="job")) for n in ("a", "b"))
        with pytest.raises(RuntimeError, match="boom"):
            commit_one_then_fail(store, a.uuid, b.uuid)
        assert (store.get_run(a.uuid).status, store.get_run(b.uuid).status) == (Status.COMPILED, Status.CREATED)


KILLED_IN_BATCH = """
import os, signal, sys
from polynb.lifecycle import Status
from polynb.store import NewRun, Store

store = Store(sys.argv[1])
first, second = sys.argv[2], sys.argv[3]
with store.batch() as batch:
    store.set_status(first, Status.COMPILED)
    store.claim(first, executor="local")
    batch.commit()
    store.set_status(second, Status.COMPILED)
    store.claim(second, executor="local")
    store.create_runs([NewRun(name="late", kind="job")])
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_in_a_batch_keeps_what_was_committed_and_nothing_after(
    db: Path, consistent: Callable[[Path], None]
) -> None:
    with Store(db) as store:
        first, second = (store.create_run(NewRun(name=n, kind="job")) for n in ("first", "second"))
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_IN_BATCH, str(db), first.uuid, second.uuid], env=env, check=False
        )
        assert killed.returncode == -signal.SIGKILL
        consistent(db)
        assert store.get_run(first.uuid).status == Status.QUEUED
        assert store.get_run(first.uuid).attempt == 1
        assert store.get_run(second.uuid).status == Status.CREATED
        assert store.get_run(second.uuid).attempt == 0
        assert sorted(r.name for r in store.list_runs()) == ["first", "second"]
