"""The bucket artifacts store's cost on the Kubernetes executor: added wall time per op and bytes moved.

    .venv/bin/python bench/kubernetes_store.py [--n 3] [--every 1]

The same ops run on the emulator's *executing* kubelet (containers are real processes; it needs root with
CAP_SYS_ADMIN, and says so otherwise) without a store (each pod's ``emptyDir`` is all there is) and with an S3 store
(moto's server on 127.0.0.1): each pod then has the ``store-sync`` native sidecar, in the image ``docker/Dockerfile``
builds, syncing every ``--every`` seconds and once more after the main container ends, before the final status.
Wall time = ``submit`` until the final update arrives; "added" is the S3 median minus the plain median: the sidecar's
start (Python, ``s3fs``) before the main container and its last sync after it. Files and bytes are what the sidecar
reports it sent (its log's last line). Prints a table.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

# This folder holds kubernetes.py: never let it shadow the official client's package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from k8s_emulator import Emulator  # noqa: E402
from k8s_emulator.sandbox import SandboxUnavailable  # noqa: E402
from support.recorder import UpdateRecorder  # noqa: E402
from support.s3kit import MotoServer  # noqa: E402

from polynb.compiler.types import CompiledOp, ContainerSpec  # noqa: E402
from polynb.executors.kubernetes.client import path  # noqa: E402
from polynb.executors.kubernetes.executor import KubernetesExecutor  # noqa: E402
from polynb.executors.kubernetes.settings import BucketStore, KubernetesSettings  # noqa: E402

WORKLOADS = {
    "short job (3 files, 12 KiB)": (
        'mkdir -p "$POLYAXON_RUN_OUTPUTS_PATH"; '
        'for i in 1 2 3; do head -c 4096 /dev/zero > "$POLYAXON_RUN_OUTPUTS_PATH/out$i"; done; echo done'
    ),
    "training (2 s, 4 MiB checkpoint)": (
        'mkdir -p "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard"; '
        "for s in 1 2 3 4 5 6 7 8 9 10; do "
        'head -c 16384 /dev/zero >> "$POLYAXON_RUN_OUTPUTS_PATH/tensorboard/events.out"; echo step $s; sleep 0.2; '
        'done; head -c 4194304 /dev/zero > "$POLYAXON_RUN_OUTPUTS_PATH/model.ckpt"'
    ),
}
SUMMARY = re.compile(r"store_sync: up (\d+) files, (\d+) bytes, (\d+) passes")


def make_op(executor: KubernetesExecutor, script: str) -> CompiledOp:
    run = uuidlib.uuid4().hex
    return CompiledOp(
        uuid=run,
        name="bench",
        kind="job",
        container=ContainerSpec(name="main", image="python:3.11-slim", command=("sh", "-c", script)),
        placement=executor.place(run, "job", 0),
    )


def run_ops(executor: KubernetesExecutor, script: str, n: int) -> tuple[list[float], list[tuple[int, int, int]]]:
    walls, sent = [], []
    for _ in range(n):
        op = make_op(executor, script)
        recorder = UpdateRecorder()
        start = time.perf_counter()
        executor.submit(op, recorder)
        final = recorder.final()
        walls.append(time.perf_counter() - start)
        assert final.status == "succeeded", final.message
        if executor.config.artifacts_store is not None:
            pod = executor._find_pod(op.uuid)  # kept (keep_finished): the sidecar's log is still there
            assert pod is not None
            name = pod["metadata"]["name"]
            text = executor.api.text(path("pods", executor.namespace, name, "log"), query={"container": "store-sync"})
            found = SUMMARY.findall(text)
            assert found, f"{name}: the sidecar reported nothing: {text[-300:]}"
            sent.append((int(found[-1][0]), int(found[-1][1]), int(found[-1][2])))
        executor.cleanup(op.uuid)
    return walls, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3, help="ops per row")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between two syncs (artifactsSyncInterval)")
    args = parser.parse_args()
    server = MotoServer().start()
    server.fs().mkdir("bench")
    connection: dict[str, Any] = server.connection("bench", "s3://bench/polynb")
    rows: list[tuple[str, str, list[float], float | None, list[tuple[int, int, int]]]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                emu = Emulator(kubelet="exec", root=Path(tmp) / "cluster").start()
            except SandboxUnavailable as exc:
                print(f"bench/kubernetes_store.py: skipped, it needs the executing kubelet: {exc}")
                return
            try:
                kubeconfig = emu.write_kubeconfig(Path(tmp) / "kubeconfig")
                common: dict[str, Any] = {"kubeconfig": str(kubeconfig), "backoff": 0.05, "port_forward": False,
                                          "keep_finished": True}  # fmt: skip
                plain = KubernetesExecutor(KubernetesSettings(kernel_id="bench-plain", **common))
                synced = KubernetesExecutor(
                    KubernetesSettings(kernel_id="bench-s3", artifacts_store=BucketStore.of(connection),
                                       store_sync_interval=args.every, **common)
                )  # fmt: skip
                try:
                    for name, script in WORKLOADS.items():
                        run_ops(plain, script, 1)  # warm-up: image layouts, the page cache
                        run_ops(synced, script, 1)
                        plain_walls, _ = run_ops(plain, script, args.n)
                        s3_walls, sent = run_ops(synced, script, args.n)
                        added = statistics.median(s3_walls) - statistics.median(plain_walls)
                        rows.append((name, "emptyDir only", plain_walls, None, []))
                        rows.append((name, f"s3 every {args.every:g}s", s3_walls, added, sent))
                finally:
                    plain.shutdown()
                    synced.shutdown()
            finally:
                emu.stop()
    finally:
        server.stop()
    print(f"kubernetes executor on the executing emulator, {args.n} ops per row; wall = submit -> final update")
    header = ("workload", "store", "wall p50 s", "wall max s", "added/op s", "files/op", "KiB/op", "passes/op")
    print("  ".join(f"{h:>12}" if i > 1 else f"{h:<34}"[: 34 if i == 0 else 16] for i, h in enumerate(header)))
    for name, store, walls, added, sent in rows:
        cells = [f"{name:<34}", f"{store:<16}", f"{statistics.median(walls):>12.3f}", f"{max(walls):>12.3f}",
                 f"{added:>12.3f}" if added is not None else f"{'-':>12}"]  # fmt: skip
        if not sent:
            cells += [f"{'-':>12}"] * 3
        else:
            n = len(sent)
            cells += [f"{sum(s[0] for s in sent) / n:>12.1f}", f"{sum(s[1] for s in sent) / n / 1024:>12.1f}",
                      f"{sum(s[2] for s in sent) / n:>12.1f}"]  # fmt: skip
        print("  ".join(cells))


if __name__ == "__main__":
    main()
