"""Notebook benchmark, in a real ipykernel: widget messages per second under ~1,000 engine events a second,
and the time to execute a trivial cell while 200 ops run, against the same cell with nothing running.

    .venv/bin/python bench/notebook.py [--ops 200] [--events 1000] [--seconds 5]

Goals: the widget cap (10 messages a second per widget) holds whatever the event rate; a trivial cell costs
under 5 ms more while 200 local ops run (each op is a real process: a shim and ``sleep``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # support.kernelkit (a recorded kernel) and support.fakes

from support.kernelkit import Kernel  # noqa: E402

from polynb.store import Store  # noqa: E402


def trivial_cells(kernel: Kernel, n: int) -> list[float]:
    """Round trips (execute_request -> reply) of ``n`` trivial cells, in ms."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        kernel.execute("1 + 1")
        out.append((time.perf_counter() - start) * 1000)
    return out


def bench_rate(kernel: Kernel, home: Path, *, events: int, seconds: float) -> tuple[float, float, float]:
    ops = 8
    # One engine event per update; sleeps overshoot, so each op is asked for more than its share.
    per_op = events / ops * 1.6
    kernel.execute(
        "from polynb.notebook.session import get_session\nfrom support.fakes import ChattyExecutor\n"
        f"get_session().config.executors['chatty'] = ChattyExecutor(rate={per_op}, duration={seconds + 2})"
    )
    spec = "".join(
        f"  - {{name: op{i}, run: {{kind: job, container: {{image: x, command: [x]}}}}}}\n" for i in range(ops)
    )
    kernel.execute("%%polyaxon_dag chatter --executor chatty\noperations:\n" + spec)
    time.sleep(1.0)  # let the ops start chattering
    with Store(home / "polynb.db") as store:
        seq0, t0 = store.last_seq(), time.monotonic()
        time.sleep(seconds)
        seq1, t1 = store.last_seq(), time.monotonic()
    window = t1 - t0
    updates = [m for m in kernel.comm_messages(method="update") if t0 < m.at < t1]
    per_widget = Counter(m.content["comm_id"] for m in updates)
    kernel.execute("%polyaxon wait chatter")
    return (seq1 - seq0) / window, max(per_widget.values(), default=0) / window, len(updates) / window


def bench_cells(kernel: Kernel, home: Path, *, ops: int, n: int) -> tuple[list[float], list[float], int]:
    idle = trivial_cells(kernel, n)
    spec = "".join(
        f"  - {{name: s{i}, run: {{kind: job, container: {{image: x, command: [sleep, '600']}}}}}}\n"
        for i in range(ops)
    )
    kernel.execute("%%polyaxon_dag sleepers\noperations:\n" + spec)
    deadline = time.monotonic() + 300
    running = 0
    with Store(home / "polynb.db") as store:
        dag = store.find_by_prefix("sleepers")
        while time.monotonic() < deadline:
            running = sum(1 for r in store.children(dag.uuid) if r.status.value == "running")
            if running >= ops:
                break
            time.sleep(0.5)
    time.sleep(2.0)  # past the start-up burst
    busy = trivial_cells(kernel, n)
    kernel.execute("%polyaxon stop sleepers")
    kernel.execute("%polyaxon wait sleepers --services")
    return idle, busy, running


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--events", type=int, default=1000, help="target engine events per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring window of the rate test")
    parser.add_argument("--cells", type=int, default=60, help="trivial cells per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="polynb-bench-") as tmp:
        home = Path(tmp) / "home"
        kernel = Kernel(Path(tmp), home)
        try:
            kernel.execute("%load_ext polynb")
            kernel.execute("1 + 1")  # warm up
            rate, worst, total = bench_rate(kernel, home, events=args.events, seconds=args.seconds)
            idle, busy, running = bench_cells(kernel, home, ops=args.ops, n=args.cells)
        finally:
            kernel.close()
    print("| measure | value |")
    print("|---|---|")
    print(f"| engine events per second (store) | {rate:,.0f} |")
    print(f"| widget messages per second, busiest widget (cap 10) | {worst:.1f} |")
    print(f"| widget messages per second, all widgets | {total:.1f} |")
    for label, data in ((f"trivial cell, nothing running (ms, n={len(idle)})", idle),
                        (f"trivial cell, {running} ops running (ms, n={len(busy)})", busy)):  # fmt: skip
        print(f"| {label}: median / p90 | {statistics.median(data):.2f} / {statistics.quantiles(data, n=10)[-1]:.2f} |")
    extra = statistics.median(busy) - statistics.median(idle)
    print(f"| extra cost of a trivial cell while ops run (median, ms) | {extra:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
