"""Benchmark a sweep on the local executor; prints a table, asserts nothing.

    .venv/bin/python bench/sweep.py [--trials 1000] [--concurrency 8] [--in-dag]

A random sweep of ``trials`` trials (each ``true``), ``concurrency`` at a time, with the run widget's sweep
view attached (the notebook's UI pump at its default 10 refreshes a second, the view counting what it is
sent). Reported:

* the wall from ``Engine.submit`` to the sweep's final status, and the scheduler overhead per trial: the wall
  less the trials' own time (created → running → succeeded as the executor reports it, ``concurrency`` at a
  time) per trial, and against the same number of ``subprocess.run(["true"])`` made ``concurrency`` at a time
  by a thread pool (the floor for starting that many processes);
* the engine process's CPU per trial (children excluded);
* the sweep view's messages a second (the widget is sent one message per refresh) and the mean time to build
  and render one snapshot of the sweep (the table, best-so-far and parallel coordinates).

With ``--in-dag`` the same matrix is on an op of a DAG (after one upstream op), and the view is the DAG's widget
with that op chosen in its op list: its sweep panel is drawn on every refresh.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SWEEP = """
version: 1.1
kind: operation
name: bench-sweep
matrix:
  kind: random
  numRuns: {trials}
  seed: 1
  concurrency: {concurrency}
  params:
    x: {{kind: uniform, value: [0, 1]}}
component:
  name: noop
  inputs: [{{name: x, type: float}}]
  run: {{kind: job, container: {{command: ["true"]}}}}
"""


SWEEP_IN_DAG = """
version: 1.1
kind: component
name: bench-dag
run:
  kind: dag
  operations:
  - name: prep
    component: {{name: prep, run: {{kind: job, container: {{command: ["true"]}}}}}}
  - name: sweep
    dependencies: [prep]
    matrix:
      kind: random
      numRuns: {trials}
      seed: 1
      concurrency: {concurrency}
      params:
        x: {{kind: uniform, value: [0, 1]}}
    component:
      name: noop
      inputs: [{{name: x, type: float}}]
      run: {{kind: job, container: {{command: ["true"]}}}}
"""


class CountingView:
    """A widget stand-in: counts the snapshots the pump sends and times rendering them as the widget does."""

    def __init__(self, root: str) -> None:
        self._root = root
        self.shown = 0
        self.render_seconds = 0.0
        self.panels = 0
        """Snapshots that had a DAG's sweeping op's panel to draw (``--in-dag``)."""
        self.lock = threading.Lock()

    @property
    def root(self) -> str:
        return self._root

    @property
    def alive(self) -> bool:
        return True

    def show(self, snapshot: object) -> None:
        from polynb.notebook.model import RunSnapshot
        from polynb.notebook.render import run_html

        assert isinstance(snapshot, RunSnapshot)
        started = time.perf_counter()
        chosen = snapshot.op_sweeps[0].uuid if snapshot.op_sweeps else None  # a DAG's sweeping op, chosen
        run_html(snapshot, selected=chosen)
        with self.lock:
            self.panels += chosen is not None
            self.shown += 1
            self.render_seconds += time.perf_counter() - started


def baseline(n: int, concurrency: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: subprocess.run(["true"], check=True), range(n)))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--in-dag", action="store_true", help="the matrix on an op of a DAG")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="polynb-bench-sweep-"))
    os.environ["POLYNB_HOME"] = str(home)
    try:
        return run(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(args: argparse.Namespace, home: Path) -> int:
    from polynb.compiler.pipeline import build_pipeline
    from polynb.compiler.registry import ComponentRegistry
    from polynb.executors.local.executor import LocalExecutor
    from polynb.notebook.model import RunTracker
    from polynb.notebook.pump import UiPump
    from polynb.scheduler.engine import Engine
    from polynb.spec.load import load_text
    from polynb.store import Store

    n, k = args.trials, args.concurrency
    store = Store(home / "polynb.db")
    engine = Engine(store=store, executors={"local": LocalExecutor(base_dir=home)}, registry=ComponentRegistry())
    pump = UiPump(store, snapshot=lambda tracker, now: tracker.snapshot(now))
    pump.start()
    engine.subscribe(pump.notify)
    engine.start()
    text = (SWEEP_IN_DAG if args.in_dag else SWEEP).format(trials=n, concurrency=k)
    pipeline = build_pipeline(load_text(text), registry=ComponentRegistry())
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    uuid = engine.submit(pipeline)
    view = CountingView(uuid)
    pump.attach(view, RunTracker(store, uuid))
    status = engine.wait(uuid, timeout=1800)
    wall = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    pump.sync()
    parent = next(r.uuid for r in store.children(uuid) if r.name == "sweep") if args.in_dag else uuid
    trials = [r for r in store.children(parent) if r.hook_of is None]
    own = sum((r.finished_at - r.created_at).total_seconds() for r in trials if r.finished_at is not None)
    engine.shutdown()
    pump.stop()
    store.close()
    floor = baseline(n, k)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    where = f", an op of a DAG (its panel drawn in {view.panels} of the messages)" if args.in_dag else ""
    rows = [
        ("sweep", f"random, {n} trials of `true`, concurrency {k}{where}: {status}"),
        ("wall, submit → sweep final", f"{wall:.2f} s"),
        ("wall per trial", f"{wall / n * 1000:.1f} ms"),
        ("scheduler overhead per trial (wall - own time / concurrency)", f"{(wall - own / k) / n * 1000:.1f} ms"),
        (
            f"vs {n} subprocess.run(['true']), {k} at a time",
            f"{floor:.2f} s ({(wall - floor) / n * 1000:.1f} ms/trial over it)",
        ),
        ("engine process CPU per trial", f"{cpu / n * 1000:.2f} ms"),
        ("sweep view messages", f"{view.shown} in {wall:.1f} s = {view.shown / wall:.1f}/s (goal <= 10/s)"),
        (
            "sweep view: build + render one snapshot (mean)",
            f"{view.render_seconds / max(view.shown, 1) * 1000:.1f} ms (render only)",
        ),
    ]
    width = max(len(a) for a, _ in rows)
    print(f"polynb sweep benchmark: local executor, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
