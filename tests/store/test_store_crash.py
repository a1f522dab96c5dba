"""A writer SIGKILLed mid-loop leaves a store that opens, with every committed change whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from polynb.lifecycle import FINAL, Status
from polynb.store import NewRun, Store

StartWorker = Callable[..., subprocess.Popen[str]]


def run_and_kill(start_worker: StartWorker, db: Path, lines: int, delay: float) -> list[tuple[str, str]]:
    """Start a crash-loop writer, let it report ``lines`` committed writes, SIGKILL it ``delay`` seconds
    later while it keeps writing, and return what it reported as committed."""
    proc = start_worker("crash", db)
    assert proc.stdout is not None
    reported: list[tuple[str, str]] = []
    while len(reported) < lines:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "worker exited"
        uuid, status = line.split()
        reported.append((uuid, status))
    # Killing right after a report would always hit the same point of the loop (just after a commit);
    # a varying delay lands the kill inside transactions too.
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Lines written before the kill but not read yet were committed too. (Read through proc.stdout, not
    # communicate(): readline() may already hold some of them in its buffer.)
    rest = proc.stdout.read()
    complete = rest[: rest.rfind("\n") + 1]  # each line is one write(2); drop a torn one all the same
    reported.extend((uuid, status) for uuid, status in (line.split() for line in complete.splitlines()))
    return reported


def test_sigkill_mid_write_loop_leaves_a_consistent_store(
    db: Path, start_worker: StartWorker, consistent: Callable[[Path], None]
) -> None:
    reported: dict[str, list[str]] = defaultdict(list)
    # Several rounds on one file: each new writer starts on a store a killed one left behind.
    for round_ in range(8):
        for uuid, status in run_and_kill(start_worker, db, lines=100 + 37 * round_, delay=0.0007 * round_):
            reported[uuid].append(status)
        consistent(db)

        with Store(db) as store:
            for uuid, statuses in reported.items():
                stored = [c.status.value for c in store.status_history(uuid)]
                # Everything reported as committed is there, in order (later commits may follow).
                assert stored[: len(statuses)] == statuses
            unfinished = {run.uuid for run in store.unfinished_runs()}
            every = store.list_runs()
            assert unfinished == {run.uuid for run in every if run.status not in FINAL}
            dags = [run for run in every if run.kind == "dag"]
            assert dags
            assert unfinished >= {dag.uuid for dag in dags}  # the writers' DAG runs never finished
            for run in every:
                if run.uuid in unfinished and run.status != Status.CREATED and run.kind == "job":
                    # Claimed and not final: in flight at the kill. The attempt is recorded, so a
                    # restarted engine will not submit it again without knowing.
                    assert run.attempt == 1
                    assert run.executor == "local"


ATOMIC_CHILD = """
import os, signal, sys
from polynb.store import NewRun, Store

store = Store(sys.argv[1])
with store.atomic():
    store.set_status(sys.argv[2], "succeeded", reason="Done")
    store.create_runs([NewRun(name="hook", kind="job", hook_of=sys.argv[2])])
    if sys.argv[3] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_store_atomic_keeps_all_of_its_writes_or_none(db: Path, consistent: Callable[[Path], None]) -> None:
    """A run's final status and the hook runs it starts are one transaction: a crash inside keeps neither,
    an exception inside rolls both back, and a finished block keeps both, the final status first."""
    with Store(db) as store:
        main = store.create_run(NewRun(name="main", kind="job"))
        store.set_status(main.uuid, Status.RUNNING)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        killed = subprocess.run([sys.executable, "-c", ATOMIC_CHILD, str(db), main.uuid, "kill"], env=env, check=False)
        assert killed.returncode == -signal.SIGKILL
        consistent(db)
        assert store.get_run(main.uuid).status == Status.RUNNING
        assert store.hooks_of(main.uuid) == []

        try:
            with store.atomic():
                store.set_status(main.uuid, Status.SUCCEEDED)
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        assert store.get_run(main.uuid).status == Status.RUNNING

        subprocess.run([sys.executable, "-c", ATOMIC_CHILD, str(db), main.uuid, "finish"], env=env, check=True)
        consistent(db)
        (hook,) = store.hooks_of(main.uuid)
        done = [e.seq for e in store.events(run_uuid=main.uuid) if e.kind == "run_status_done"]
        assert store.get_run(main.uuid).status == Status.SUCCEEDED
        assert done and done[0] < store.events(run_uuid=hook.uuid)[0].seq
