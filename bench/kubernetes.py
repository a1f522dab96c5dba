"""Kubernetes executor against the emulator: API requests per op lifecycle (by verb), watches open for 100
concurrent ops, requests made while they run, and event-to-create latency (p50/p99) of an event-triggered
op (a TensorBoard-like service started on the experiment's ``run_status_running``).

    .venv/bin/python bench/kubernetes.py [--ops 100] [--pairs 50]

Goals: one watch per namespace; at most 4 requests per job op from create to cleanup (log archiving and the
deletion of its objects included); no request that grows
with the number of ops while they run. The emulator is in-process (loopback), so latencies measure polynb and
the client, not a network.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

# This file is named like the official client's package: never let its folder shadow ``kubernetes``.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from k8s_emulator import Emulator, script_annotation  # noqa: E402

from polynb.compiler.pipeline import build_pipeline  # noqa: E402
from polynb.compiler.registry import ComponentRegistry  # noqa: E402
from polynb.compiler.types import CompiledOp, ContainerSpec  # noqa: E402
from polynb.executors.base import ExecutorUpdate  # noqa: E402
from polynb.executors.kubernetes.executor import KubernetesExecutor  # noqa: E402
from polynb.executors.kubernetes.settings import KubernetesSettings  # noqa: E402
from polynb.scheduler.engine import Engine  # noqa: E402
from polynb.spec.load import load_text  # noqa: E402
from polynb.store import Store  # noqa: E402

VERBS = ("create", "get", "list", "watch", "patch", "update", "delete", "deletecollection")


def op(executor: KubernetesExecutor, name: str, kind: str = "job", hold: bool = False) -> CompiledOp:
    import uuid

    run = uuid.uuid4().hex
    script = script_annotation({"main": {"hold": hold, "message": '{"loss": 0.1}'}})
    return CompiledOp(
        uuid=run,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        container=ContainerSpec(name="main", image="python:3.11-slim", command=("python", "t.py")),
        placement=executor.place(run, kind, 1 if kind == "service" else 0),  # type: ignore[arg-type]
        environment={"annotations": script},
    )


def final_of(q: queue.Queue[ExecutorUpdate], status: str | None = None) -> ExecutorUpdate:
    while True:
        update = q.get(timeout=60)
        if update.is_final or (status is not None and update.status == status):
            return update


def lifecycle(emu: Emulator, executor: KubernetesExecutor, kind: str) -> Counter[str]:
    q: queue.Queue[ExecutorUpdate] = queue.Queue()
    compiled = op(executor, f"life-{kind}", kind, hold=kind == "service")
    emu.settle()
    emu.reset_counts()
    executor.submit(compiled, q.put)
    if kind == "service":
        final_of(q, "running")
        executor.stop(compiled.uuid)
    final_of(q)
    executor.cleanup(compiled.uuid)
    emu.settle()
    return emu.counts()


def concurrent(emu: Emulator, executor: KubernetesExecutor, n: int) -> dict[str, Any]:
    queues = []
    emu.reset_counts()
    watches_before = emu.max_open_watches
    for i in range(n):
        q: queue.Queue[ExecutorUpdate] = queue.Queue()
        compiled = op(executor, f"c{i}", hold=True)
        executor.submit(compiled, q.put)
        queues.append((compiled, q))
    for _, q in queues:
        final_of(q, "running")
    after_start = emu.counts()
    emu.reset_counts()
    # While they run: events of every pod (logs written, a bookmark) must not cause requests.
    for compiled, _ in queues[: n // 2]:
        pod = emu.pod_of(compiled.uuid)
        assert pod is not None
        emu.log(pod["metadata"]["name"], "main", "progress")
    emu.send_bookmarks()
    emu.settle()
    time.sleep(0.5)  # a bench, not a test: give a misbehaving poller the chance to show up
    while_running = emu.counts()
    for compiled, _ in queues:
        pod = emu.pod_of(compiled.uuid)
        assert pod is not None
        emu.finish(pod["metadata"]["name"])
    for _, q in queues:
        final_of(q)
    return {
        "open_watches": emu.open_watches,
        "max_open_watches": max(emu.max_open_watches, watches_before),
        "start": after_start,
        "while_running": while_running,
    }


def latency(emu: Emulator, kubeconfig: Path, home: Path, pairs: int) -> list[float]:
    """Seconds from the experiment's main container starting (the emulator's write) to the creation of the
    event-triggered service's pod, through the watch, the engine and the executor, per DAG."""
    started: dict[str, float] = {}
    created: dict[str, float] = {}
    original = emu.store._record

    def record(plural: str, kind: str, obj: dict[str, Any], prev: dict[str, Any] | None) -> None:
        original(plural, kind, obj, prev)
        if plural != "pods":
            return
        labels = obj["metadata"].get("labels") or {}
        dag = labels.get("polynb.io/dag", "")
        if kind == "ADDED" and labels.get("polynb.io/kind") == "service":
            created.setdefault(dag, time.monotonic())
        elif labels.get("polynb.io/kind") == "job" and dag not in started:
            statuses = (obj.get("status") or {}).get("containerStatuses") or []
            if any("running" in (s.get("state") or {}) for s in statuses):
                started[dag] = time.monotonic()

    emu.store._record = record  # type: ignore[method-assign]
    emu.scripts.update({"emu/hold": {"hold": True}})
    store = Store(home / "polynb.db")
    executor = KubernetesExecutor(
        KubernetesSettings(kubeconfig=str(kubeconfig), kernel_id="bench-engine", port_forward=False)
    )
    engine = Engine(
        store=store, executors={"kubernetes": executor}, default_executor="kubernetes", registry=ComponentRegistry()
    )
    engine.start()
    text = textwrap.dedent("""\
        version: 1.1
        kind: component
        name: pair
        run:
          kind: dag
          operations:
            - name: experiment
              component: {name: experiment, run: {kind: job, container: {image: emu/hold, command: [train]}}}
            - name: tensorboard
              events: [{ref: ops.experiment, kinds: [run_status_running]}]
              component:
                name: tensorboard
                run: {kind: service, ports: [6006], container: {image: emu/hold, command: [tb]}}
        """)
    try:
        for _ in range(pairs):
            pipeline = build_pipeline(load_text(text), params={}, registry=ComponentRegistry(), base_dir=Path.cwd())
            engine.submit(pipeline)
        deadline = time.monotonic() + 120
        while len(created) < pairs and time.monotonic() < deadline:
            time.sleep(0.05)
        return [created[d] - started[d] for d in created if d in started]
    finally:
        engine.shutdown(stop_running=True)
        store.close()
        emu.store._record = original  # type: ignore[method-assign]


def table(title: str, rows: list[tuple[str, Any]]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Emulator() as emu:
        os.environ["POLYNB_HOME"] = tmp  # finished runs' logs are archived under it
        kubeconfig = emu.write_kubeconfig(Path(tmp) / "kubeconfig")
        executor = KubernetesExecutor(
            KubernetesSettings(kubeconfig=str(kubeconfig), kernel_id="bench", port_forward=False)
        )
        try:
            warm: queue.Queue[ExecutorUpdate] = queue.Queue()
            warm_op = op(executor, "warm-up")
            executor.submit(warm_op, warm.put)
            final_of(warm)
            executor.cleanup(warm_op.uuid)  # returns once its logs are archived and its Job deleted
            emu.settle()
            job = lifecycle(emu, executor, "job")
            service = lifecycle(emu, executor, "service")
            print("API requests per op lifecycle (submit -> final -> cleanup), by verb")
            print(f"  {'op':<8}" + "".join(f"{v:>17}" for v in VERBS) + f"{'total':>8}")
            for name, counts in (("job", job), ("service", service)):
                print(f"  {name:<8}" + "".join(f"{counts.get(v, 0):>17}" for v in VERBS) + f"{sum(counts.values()):>8}")
            result = concurrent(emu, executor, args.ops)
            table(
                f"{args.ops} concurrent job ops",
                [
                    ("watches open (max seen)", result["max_open_watches"]),
                    ("requests to start them", dict(result["start"])),
                    ("requests while they ran", sum(result["while_running"].values())),
                ],
            )
        finally:
            executor.shutdown()
        lat = latency(emu, kubeconfig, Path(tmp), args.pairs)
        if lat:
            ms = sorted(x * 1000 for x in lat)
            p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
            table(
                f"event-to-create latency ({len(ms)} experiment -> tensorboard pairs)",
                [
                    ("p50 (ms)", f"{statistics.median(ms):.1f}"),
                    ("p99 (ms)", f"{p99:.1f}"),
                    ("max (ms)", f"{ms[-1]:.1f}"),
                ],
            )


if __name__ == "__main__":
    main()
