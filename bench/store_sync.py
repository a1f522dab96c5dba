"""The bucket artifacts store's cost on the local executor: added wall time per op and bytes moved.

    .venv/bin/python bench/store_sync.py [--n 5] [--every 1]

The same ops run on the local executor with the host-path store (the default: the run's folder is all there is)
and with an S3 store (moto's server on 127.0.0.1, synced every ``--every`` seconds while the op runs and once
more before its final status). Wall time = ``submit`` until the final update arrives; "added" is the S3 median
minus the host-path median, the price of the final sync (the periodic ones overlap the op). Files and bytes
moved are what the sync process reports it sent (a file that grew between passes is sent again, so a growing
log costs more than its final size). Engine CPU is this process's CPU time over all of a row's ops: the sync
runs beside each run's shim, not in the engine. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.execkit import container, make_op  # noqa: E402
from support.recorder import UpdateRecorder  # noqa: E402
from support.s3kit import MotoServer  # noqa: E402

from polynb.executors.local.executor import LocalExecutor  # noqa: E402
from polynb.store.remote import StoreAccess, StoreRecord  # noqa: E402

WORKLOADS = {
    # A short op: three small outputs, one log line.
    "short job (3 files, 12 KiB)": (
        'for i in 1 2 3; do head -c 4096 /dev/zero > "$POLYAXON_RUN_OUTPUTS_PATH/out$i"; done; echo done'
    ),
    # A training-like op: an event file that grows for 2 s, a checkpoint, a log line per step.
    "training (2 s, 4 MiB checkpoint)": (
        'mkdir -p "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard"; '
        "for s in 1 2 3 4 5 6 7 8 9 10; do "
        'head -c 16384 /dev/zero >> "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard/events.out"; echo step $s; sleep 0.2; '
        'done; head -c 4194304 /dev/zero > "$POLYAXON_RUN_OUTPUTS_PATH/model.ckpt"'
    ),
}
SUMMARY = re.compile(r"store_sync: up (\d+) files, (\d+) bytes, (\d+) passes")


def run_ops(executor: LocalExecutor, script: str, n: int) -> tuple[list[float], float, list[Path]]:
    walls, dirs = [], []
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(n):
        op = make_op(executor, container("sh", "-c", script))
        recorder = UpdateRecorder()
        start = time.perf_counter()
        executor.submit(op, recorder)
        final = recorder.final()
        walls.append(time.perf_counter() - start)
        assert final.status == "succeeded", final.message
        dirs.append(Path(op.placement.run_artifacts_path))
    after = resource.getrusage(resource.RUSAGE_SELF)
    return walls, (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime), dirs


def moved(dirs: list[Path]) -> tuple[int, int, int]:
    """Files, bytes and passes the runs' syncs reported."""
    files = size = passes = 0
    for run_dir in dirs:
        found = SUMMARY.findall((run_dir / ".executor" / "store-sync.log").read_text())
        assert found, f"{run_dir}: the sync reported nothing"
        files, size, passes = files + int(found[-1][0]), size + int(found[-1][1]), passes + int(found[-1][2])
    return files, size, passes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5, help="ops per row")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between two syncs (artifactsSyncInterval)")
    args = parser.parse_args()
    server = MotoServer().start()
    server.fs().mkdir("bench")
    url = "s3://bench/polynb"
    access = StoreAccess(StoreRecord("bench", "s3", url, every=args.every), server.connection("bench", url))
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["POLYNB_HOME"] = tmp
            host = LocalExecutor(base_dir=tmp)
            bucket = LocalExecutor(base_dir=tmp, artifacts_store_of=lambda _uuid: access)
            try:
                for name, script in WORKLOADS.items():
                    run_ops(host, script, 1)  # warm-up: the fork server, the page cache
                    host_walls, host_cpu, _ = run_ops(host, script, args.n)
                    s3_walls, s3_cpu, dirs = run_ops(bucket, script, args.n)
                    files, size, passes = moved(dirs)
                    added = statistics.median(s3_walls) - statistics.median(host_walls)
                    rows.append((name, "host path", host_walls, host_cpu, None, None))
                    rows.append((name, f"s3 every {args.every:g}s", s3_walls, s3_cpu, added,
                                 (files / args.n, size / args.n, passes / args.n)))  # fmt: skip
            finally:
                host.shutdown()
                bucket.shutdown()
    finally:
        server.stop()
    print(f"local executor, {args.n} ops per row; wall = submit -> final update")
    header = ("workload", "store", "wall p50 s", "wall max s", "added/op s", "files/op", "KiB/op", "passes/op",
              "engine CPU/op ms")  # fmt: skip
    print("  ".join(f"{h:>16}" if i > 1 else f"{h:<34}"[: 34 if i == 0 else 14] for i, h in enumerate(header)))
    for name, store, walls, cpu, added, sent in rows:
        cells = [f"{name:<34}", f"{store:<14}", f"{statistics.median(walls):>16.3f}", f"{max(walls):>16.3f}",
                 f"{added:>16.3f}" if added is not None else f"{'-':>16}"]  # fmt: skip
        if sent is None:
            cells += [f"{'-':>16}"] * 3
        else:
            cells += [f"{sent[0]:>16.1f}", f"{sent[1] / 1024:>16.1f}", f"{sent[2]:>16.1f}"]
        cells.append(f"{cpu / len(walls) * 1000:>16.1f}")
        print("  ".join(cells))


if __name__ == "__main__":
    main()
