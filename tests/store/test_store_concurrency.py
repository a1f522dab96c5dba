"""Several threads and processes on one store file: one global event sequence, claims won exactly once."""

from __future__ import annotations

import json
import random
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from polynb.lifecycle import Status
from polynb.store import NewRun, Store
from polynb.store.errors import StoreError

Consistent = Callable[[Path], None]
StartWorker = Callable[..., subprocess.Popen[str]]


def write_runs(store: Store, prefix: str, count: int, barrier: threading.Barrier) -> list[int]:
    """Create ``count`` runs and take each through its life; return the seqs of the events appended."""
    barrier.wait()
    seqs: list[int] = []
    for i in range(count):
        run = store.create_run(NewRun(name=f"{prefix}{i}", kind="job"))
        seqs.append(store.status_history(run.uuid)[0].seq)
        for status in (Status.QUEUED, Status.RUNNING, Status.SUCCEEDED):
            seqs.extend(e.seq for e in store.set_status(run.uuid, status).events)
        seqs.append(store.append_event(run.uuid, "run_new_artifacts").seq)
    return seqs


def start_together(start_worker: StartWorker, go: Path, *worker_args: tuple[object, ...]) -> list[list[Any]]:
    """Start workers, release them at once when all have opened the store, return their JSON results (seqs or
    uuids, by command)."""
    procs = [start_worker(*args) for args in worker_args]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def test_seq_is_global_and_gapless_across_threads_and_two_store_instances(db: Path, consistent: Consistent) -> None:
    threads_per_store, runs_per_thread = 3, 30
    barrier = threading.Barrier(2 * threads_per_store)
    with Store(db) as one, Store(db) as two, ThreadPoolExecutor(2 * threads_per_store) as pool:
        futures = [
            pool.submit(write_runs, store, f"{n}-{t}-", runs_per_thread, barrier)
            for n, store in enumerate((one, two))
            for t in range(threads_per_store)
        ]
        per_thread = [f.result() for f in futures]
        last = one.last_seq()
        assert two.last_seq() == last
    for seqs in per_thread:
        assert seqs == sorted(set(seqs))  # each writer sees its own seqs strictly increase
    every = sorted(seq for seqs in per_thread for seq in seqs)
    assert every == list(range(1, last + 1))  # no duplicate, no gap, nothing lost
    consistent(db)


def test_seq_is_global_and_gapless_across_processes(
    db: Path, tmp_path: Path, start_worker: StartWorker, consistent: Consistent
) -> None:
    Store(db).close()
    go = tmp_path / "go"
    count = 60
    results = start_together(start_worker, go, ("writes", db, go, count), ("writes", db, go, count))
    with Store(db) as store:
        assert len(store.list_runs()) == 2 * count
        last = store.last_seq()
    for seqs in results:
        assert seqs == sorted(set(seqs))
        assert len(seqs) == count * 7  # created, queued, starting, running, succeeded, done, artifacts
    assert sorted(results[0] + results[1]) == list(range(1, last + 1))
    consistent(db)


def test_a_poller_sees_every_event_once_and_in_order_while_another_process_writes(
    db: Path, tmp_path: Path, start_worker: StartWorker
) -> None:
    go = tmp_path / "go"
    with Store(db) as store:
        proc = start_worker("writes", db, go, 80)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        go.touch()
        seen: list[int] = []
        while True:
            finished = proc.poll() is not None  # so the loop reads to the end once the writer has exited
            batch = store.events(after_seq=seen[-1] if seen else 0, limit=50)
            seen.extend(e.seq for e in batch)
            if finished and not batch:
                break
        proc.communicate()
        assert proc.returncode == 0
        assert seen == list(range(1, store.last_seq() + 1))


def test_a_claim_is_won_exactly_once_by_concurrent_threads(store: Store) -> None:
    uuids = [r.uuid for r in store.create_runs(NewRun(name=f"op{i}", kind="job") for i in range(40))]
    claimers = 8
    barrier = threading.Barrier(claimers)

    def claim_all(seed: int) -> list[str]:
        order = random.Random(seed).sample(uuids, len(uuids))
        barrier.wait()
        # Claimers move to different statuses, so only the compare-and-set can stop a second winner.
        target = Status.QUEUED if seed % 2 else Status.STARTING
        return [uuid for uuid in order if store.claim(uuid, status=target, executor=f"t{seed}")]

    with ThreadPoolExecutor(claimers) as pool:
        won = list(pool.map(claim_all, range(claimers)))
    assert sorted(uuid for batch in won for uuid in batch) == sorted(uuids)
    for uuid in uuids:
        run = store.get_run(uuid)
        winner = next(i for i, batch in enumerate(won) if uuid in batch)
        assert (run.executor, run.attempt) == (f"t{winner}", 1)
        assert [c.status for c in store.status_history(uuid)] == [Status.CREATED, run.status]


def test_a_claim_is_won_exactly_once_by_concurrent_processes(
    db: Path, tmp_path: Path, start_worker: StartWorker, consistent: Consistent
) -> None:
    with Store(db) as store:
        uuids = [r.uuid for r in store.create_runs(NewRun(name=f"op{i}", kind="job") for i in range(60))]
    go = tmp_path / "go"
    orders = [random.Random(seed).sample(uuids, len(uuids)) for seed in range(4)]
    targets = ["queued", "starting", "queued", "starting"]
    won = start_together(
        start_worker, go, *(("claim", db, go, target, *order) for target, order in zip(targets, orders, strict=True))
    )
    assert sorted(uuid for batch in won for uuid in batch) == sorted(uuids)
    with Store(db) as store:
        for uuid in uuids:
            run = store.get_run(uuid)
            assert [c.status for c in store.status_history(uuid)] == [Status.CREATED, run.status]
            assert run.attempt == 1
    consistent(db)


def test_closing_the_store_leaves_a_live_threads_work_to_finish_and_its_next_call_fails(db: Path) -> None:
    """A UI thread may still be reading when the kernel closes the store: its statement runs on an open
    connection (closing it from another thread races in SQLite's C code) and its next call says closed."""
    store = Store(db)
    run = store.create_run(NewRun(name="r", kind="job"))
    opened, closed = threading.Event(), threading.Event()
    seen: list[object] = []

    def reader() -> None:
        with store._pool.read() as conn:  # a read transaction open across the close
            opened.set()
            assert closed.wait(30), "deadlock guard"
            seen.append(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        try:
            store.get_run(run.uuid)
        except StoreError as exc:
            seen.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    assert opened.wait(30), "deadlock guard"
    store.close()
    closed.set()
    thread.join(30)
    assert seen[0] == 1
    assert isinstance(seen[1], StoreError) and "closed" in str(seen[1])
