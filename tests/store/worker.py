"""A separate process that writes to a store, for the multi-process and crash tests.

worker.py writes DB GO N      N runs, each claimed and taken to succeeded with one extra event;
                              prints the seqs of every event it appended, as JSON
worker.py claim DB GO S UUID.. claims each run (moving it to status S), prints the uuids it won, as JSON
worker.py crash DB            writes forever, printing one line per committed write ("uuid status")

The writes and claim modes print "ready" once the store is open, then wait for the file GO to exist, so
workers started together write at the same time.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from polynb.lifecycle import Status
from polynb.store import NewRun, Store

LIFE = (Status.STARTING, Status.RUNNING, Status.SUCCEEDED)


def wait_for(go: Path) -> None:
    """Say the store is open, then wait for the file ``go``: workers started together write together."""
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)


def writes(store: Store, go: Path, count: int) -> None:
    wait_for(go)
    seqs: list[int] = []
    for i in range(count):
        run = store.create_run(NewRun(name=f"w{i}", kind="job"))
        seqs.append(store.status_history(run.uuid)[0].seq)
        claimed = store.claim(run.uuid, executor="local")
        seqs.extend(e.seq for e in claimed.events)
        for status in LIFE:
            seqs.extend(e.seq for e in store.set_status(run.uuid, status).events)
        seqs.append(store.append_event(run.uuid, "run_new_artifacts", {"i": i}).seq)
    print(json.dumps(seqs))


def claims(store: Store, go: Path, status: str, uuids: list[str]) -> None:
    wait_for(go)
    won = [uuid for uuid in uuids if store.claim(uuid, status=status, executor="local")]
    print(json.dumps(won))


def crash_loop(store: Store) -> None:
    dag = store.create_run(NewRun(name="dag", kind="dag"))
    i = 0
    while True:
        ops = store.create_runs(NewRun(name=f"op{i}-{j}", kind="job", dag_uuid=dag.uuid) for j in range(3))
        for op in ops:
            print(op.uuid, Status.CREATED.value, flush=True)
        for op in ops:
            store.claim(op.uuid, executor="local", spec={"argv": ["python", "-c", "pass"]})
            print(op.uuid, Status.QUEUED.value, flush=True)
            store.set_handle(op.uuid, {"pid": 1000 + i, "pgid": 1000 + i})
            for status in (Status.STARTING, Status.RUNNING, Status.FAILED if i % 5 == 0 else Status.SUCCEEDED):
                store.set_status(op.uuid, status, reason="Worker", message=f"step {i}")
                print(op.uuid, status.value, flush=True)
            store.set_outputs(op.uuid, {"loss": 1.0 / (i + 1)})
            store.append_event(op.uuid, "run_new_artifacts", {"i": i})
        i += 1


def main(argv: list[str]) -> None:
    mode, db = argv[0], Path(argv[1])
    with Store(db) as store:
        if mode == "writes":
            writes(store, Path(argv[2]), int(argv[3]))
        elif mode == "claim":
            claims(store, Path(argv[2]), argv[3], argv[4:])
        elif mode == "crash":
            crash_loop(store)
        else:
            raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
